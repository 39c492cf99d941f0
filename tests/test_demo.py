"""``manage.py demo`` (what ``make demo`` runs): the sandbox API, the dashboard and a
task worker come up together, and Ctrl-C stops all three."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.servers import ROOT, free_port
from tests.workers import process_env


def read_until(process: subprocess.Popen[str], marker: str) -> str:
    """The process's output up to the line containing ``marker``."""
    assert process.stdout is not None
    lines: list[str] = []
    while True:
        ready, _, _ = select.select([process.stdout], [], [], 60)  # a guard, not a measurement
        assert ready, "demo printed nothing for a minute:\n" + "".join(lines)
        line = process.stdout.readline()
        assert line, "demo exited:\n" + "".join(lines)
        lines.append(line)
        if marker in line:
            return "".join(lines)


def wait_for(url: str) -> httpx.Response:
    deadline = time.monotonic() + 60  # a guard against a hung test, not a measurement
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.usefixtures("transactional_db")
class TestDemo:
    def test_it_serves_all_three_and_ctrl_c_stops_them(self):
        port = free_port()
        env = {**process_env("http://127.0.0.1:9"), "PYTHONUNBUFFERED": "1"}
        demo = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--port", str(port), "--sandbox-port", "0"]
            + ["--models", "3", "--latency-ms", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            banner = read_until(demo, "Stop with Ctrl-C.")
            sandbox = re.search(r"Sandbox Mistral API: (http://\S+)", banner)
            worker = re.search(r"Task worker: +running \(pid (\d+)\)", banner)
            assert sandbox and worker, banner
            assert f"Dashboard:           http://127.0.0.1:{port}/" in banner
            assert "alice" in banner and "(sandbox key sandbox-" in banner

            health = wait_for(f"http://127.0.0.1:{port}/healthz")
            cards = httpx.get(
                f"{sandbox[1]}/v1/models",
                headers={"Authorization": "Bearer sandbox-demo"},
                timeout=5,
            )

            assert health.status_code == 200
            assert len([c for c in cards.json()["data"] if c["type"] == "fine-tuned"]) == 3
        finally:
            demo.send_signal(signal.SIGINT)
            out, _ = demo.communicate(timeout=90)

        assert demo.returncode == 0, out
        with pytest.raises(ProcessLookupError):
            os.kill(int(worker[1]), 0)  # the worker was stopped and reaped
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{sandbox[1]}/v1/models", timeout=5)
