"""Task workers for the tests: one in a thread of the test process (fast, for the bulk
views' tests), or real `manage.py run_worker` processes (kill and recycle tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django_tasks_db.management.commands.db_worker import Worker

from tests.servers import ROOT


class Hold:
    """Keeps the sandbox's requests of one method waiting, in flight, until released
    (after letting the first ``passing`` through): concurrency shown by what the
    sandbox sees, with no timing involved."""

    def __init__(self, sandbox, method: str, *, passing: int = 0) -> None:
        self.method = method
        self.passing = passing
        self.waiting = 0
        self.released = False
        self.condition = threading.Condition()
        self._plan = sandbox.state.faults.plan

    def plan(self, method: str, path: str):
        if method == self.method:
            with self.condition:
                if self.passing > 0:
                    self.passing -= 1
                else:
                    self.waiting += 1
                    self.condition.notify_all()
                    self.condition.wait_for(lambda: self.released, timeout=120)
        return self._plan(method, path)

    def until_waiting(self, count: int) -> None:
        with self.condition:
            assert self.condition.wait_for(lambda: self.waiting >= count, timeout=90)

    def release(self) -> None:
        with self.condition:
            self.released = True
            self.condition.notify_all()


@contextmanager
def holding(sandbox, method: str, *, passing: int = 0) -> Iterator[Hold]:
    hold = Hold(sandbox, method, passing=passing)
    sandbox.state.faults.plan = hold.plan
    try:
        yield hold
    finally:
        hold.release()
        del sandbox.state.faults.plan


@contextmanager
def worker_thread(worker_id: str = "test-worker") -> Iterator[Worker]:
    """django-tasks-db's worker loop in a thread of the test process (polling every 20 ms)."""
    worker = Worker(
        queue_names=["default"],
        interval=0.02,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=worker_id,
        excluded_queue_names=[],
    )
    thread = threading.Thread(target=worker.run, name="test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.running = False
        thread.join(timeout=60)  # a deadlock guard, not a timing


def wait_until(condition: Callable[[], Any], *, what: str, deadline: float = 90) -> Any:
    """Poll ``condition`` (a database read) until it is truthy; fail after ``deadline`` s."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def process_env(sandbox_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker or web process using the test database."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    else:
        url = f"sqlite:///{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.process_settings",
        "DATABASE_URL": url,
        "DASHBOARD_TEST_MISTRAL_API_URL": sandbox_url,
        **extra,
    }


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_worker",
            "--no-startup-delay",
            "--interval",
            "0.1",
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    """Stop a process (SIGTERM, then SIGKILL) and return its output."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    out, _ = process.communicate(timeout=30)
    return out


def read_until(process: subprocess.Popen[str], text: str) -> str:
    """Read the process's output up to the line containing ``text`` (or its end)."""
    seen = []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if text in line:
            break
    return "".join(seen)
