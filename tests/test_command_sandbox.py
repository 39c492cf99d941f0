"""``call_command("sandbox", ...)``: the management command Django finds (``manage.py
sandbox`` itself is handed to ``sandbox.cli`` before the settings load), with the same
arguments; SIGTERM stops it as Ctrl-C does."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys

import httpx

from tests.servers import ROOT

CODE = """
import django
django.setup()
from django.core.management import call_command
call_command("sandbox", "--port", "0", "--models", "2", "--rate-limit", "5", "--quiet")
"""


class TestSandboxCommand:
    def test_call_command_serves_until_sigterm(self):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [sys.executable, "-c", CODE],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
        )
        assert process.stdout is not None
        try:
            ready, _, _ = select.select([process.stdout], [], [], 30)  # a guard only
            assert ready, "the command printed nothing"
            banner = process.stdout.readline()
            url = re.search(r"on (http://127\.0\.0\.1:\d+) — any key", banner)
            assert url, banner

            response = httpx.get(
                f"{url[1]}/v1/models", headers={"Authorization": "Bearer sandbox-x"}, timeout=5
            )
            lines = [process.stdout.readline() for _ in range(3)]

            assert response.status_code == 200
            assert lines[1] == "Rate limit: 5 requests/s per key\n"
        finally:
            process.terminate()
            out, _ = process.communicate(timeout=30)

        assert process.returncode == 0
        assert out.endswith("Sandbox stopped.\n")
