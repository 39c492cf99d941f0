"""Run the sandbox API, the dashboard and a task worker together, for `make demo`."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from models_admin.management.commands.seed_demo import login_lines
from models_admin.sandbox import SandboxServer


class Command(BaseCommand):
    help = (
        "Serve the sandbox Mistral API and the dashboard (development server), with a "
        "task worker (bulk jobs, scheduled upkeep) in a process of its own."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=8001)
        parser.add_argument(
            "--models", type=int, default=40, help="fine-tuned models per workspace"
        )
        parser.add_argument(
            "--latency-ms", type=int, default=60, help="sandbox latency per request"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sandbox = SandboxServer(
            options["host"],
            options["sandbox_port"],
            models=options["models"],
            latency_ms=options["latency_ms"],
        ).start()
        settings.MISTRAL_API_URL = sandbox.url
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--no-reload"],
            cwd=settings.BASE_DIR,
            env={**os.environ, "MISTRAL_API_URL": sandbox.url},
            start_new_session=True,  # Ctrl-C reaches it only as the one SIGTERM below
        )
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Sandbox Mistral API: {sandbox.url}"))
        self.stdout.write(self.style.SUCCESS(f"Dashboard:           {url}"))
        self.stdout.write(self.style.SUCCESS(f"Task worker:         running (pid {worker.pid})"))
        self.stdout.write("Sign in as:")
        for line in login_lines():
            self.stdout.write(line)
        self.stdout.write("Stop with Ctrl-C.\n")
        try:
            call_command("runserver", f"{options['host']}:{options['port']}", use_reloader=False)
        finally:
            worker.terminate()  # a graceful stop: it finishes the item in hand
            worker.wait(timeout=60)
            sandbox.stop()
