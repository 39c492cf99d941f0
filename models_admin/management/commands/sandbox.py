"""``manage.py sandbox``: serve the Mistral-compatible sandbox API until Ctrl-C."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from models_admin.sandbox import SandboxServer

# Enough history for /_sandbox/requests in a demo without growing forever in a benchmark.
RECORD_LIMIT = 10_000


class Command(BaseCommand):
    help = "Serve the sandbox Mistral model-management API (any key starting with 'sandbox-')."
    # The sandbox needs neither the database nor the rest of the project to be healthy.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1)."
        )
        parser.add_argument(
            "--port", type=int, default=8001, help="Port; 0 picks a free one (default 8001)."
        )
        parser.add_argument(
            "--models", type=int, default=40, help="Fine-tuned models per workspace (default 40)."
        )
        parser.add_argument(
            "--latency-ms",
            type=int,
            default=0,
            help="Delay added to every API request (default 0).",
        )
        parser.add_argument("--quiet", action="store_true", help="Do not log each request.")

    def handle(self, *args: Any, **options: Any) -> None:
        server = SandboxServer(
            options["host"],
            options["port"],
            models=options["models"],
            latency_ms=options["latency_ms"],
            record_limit=RECORD_LIMIT,
            access_log=None if options["quiet"] else sys.stderr,
        )
        self.stdout.write(
            f'Sandbox Mistral API on {server.url} — any key starting with "sandbox-" works'
        )
        self.stdout.write(
            f"Faults: {server.url}/_sandbox/faults · request log: {server.url}/_sandbox/requests"
        )
        self.stdout.write("Quit with CONTROL-C.")
        self.stdout.flush()

        def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        # Containers and process managers stop with SIGTERM: shut down as on Ctrl-C.
        signal.signal(signal.SIGTERM, stop_on_sigterm)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("Sandbox stopped.")
