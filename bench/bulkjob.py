"""4. Bulk archive of 200 models, against 200 sequential calls (2,000 models, 50 ms latency).

The selection is posted as the list page posts it (htmx), which makes a draft job; the
clock runs from the confirmation (``POST /bulk/<id>/start/``, which queues the job)
until the job's row says ``finished`` (polled every 10 ms): end to end through the task
queue, run by one `manage.py run_worker` process as the Procfile starts it (its default
polling interval included). Three jobs over three different sets of 200 models; the
median counts.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.test import override_settings
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from bench.common import (
    BULK_SIZE,
    HTMX,
    LATENCY_MS,
    BenchError,
    Metric,
    expect_status,
    upstream_calls,
)
from bench.environment import BULK_KEY, ROOT, Environment
from bench.upstream import _fine_tuned_ids
from models_admin.models import BulkItem, BulkJob

TARGET = 0.2
RUNS = 3
TIMEOUT_S = 60.0
POLL_S = 0.01


def _one_job(env: Environment, ids: list[str]) -> dict[str, Any]:
    server, user = env.large, env.bulk_user
    client = env.client(user)
    workspace = server.state.workspace(BULK_KEY)
    job = prepare_archive(client, user, ids)
    idle_wait = wait_until_idle(timeout=TIMEOUT_S)
    server.state.peak_in_flight = server.state.in_flight
    with upstream_calls(server) as calls:
        elapsed = start_and_finish(client, job, timeout=TIMEOUT_S)
    failed = job.items.exclude(status=BulkItem.Status.SUCCEEDED)
    if failed.exists():
        raise BenchError(
            f"bulk items did not succeed, e.g. {list(failed.values_list('model_id', 'message')[:3])}"
        )
    if any(not workspace.get(model_id)["archived"] for model_id in ids):
        raise BenchError("some models are not archived upstream after the job")
    kinds: dict[str, int] = {}
    for call in calls:
        kind = "archive" if call.path.endswith("/archive") else f"{call.method} {call.path}"
        kinds[kind] = kinds.get(kind, 0) + 1
    assert job.finished_at is not None and job.started_at is not None
    return {
        "wall_seconds": round(elapsed, 3),
        "worker_busy_before_seconds": round(idle_wait, 3),
        "job_started_to_finished_seconds": round(
            (job.finished_at - job.started_at).total_seconds(), 3
        ),
        "upstream_calls": kinds,
        "peak_upstream_in_flight": server.state.peak_in_flight,
    }


def prepare_archive(client: Any, user: Any, ids: list[str]) -> BulkJob:
    """The draft job the list page's selection of ``ids`` makes (htmx)."""
    prepared = client.post("/models/bulk/", {"action": "archive", "ids": ids}, headers=HTMX)
    expect_status(prepared, 200)
    job = BulkJob.objects.filter(created_by=user, state=BulkJob.State.DRAFT).latest("created_at")
    if job.items.count() != len(ids):
        raise BenchError(f"the draft job has {job.items.count()} items, not {len(ids)}")
    return job


def wait_until_idle(*, timeout: float) -> float:
    """Wait until the task queue holds nothing ready or running (a worker just started
    runs its scheduled upkeep first, an inventory sync of every stored key included), so
    the clock measures the job, not the chores queued ahead of it; the seconds waited."""
    started = time.perf_counter()
    busy = (TaskResultStatus.READY, TaskResultStatus.RUNNING)
    while DBTaskResult.objects.filter(status__in=busy).exists():
        if time.perf_counter() > started + timeout:
            raise BenchError(f"the task queue was still busy after {timeout:.0f} s")
        time.sleep(POLL_S)
    return time.perf_counter() - started


def start_and_finish(client: Any, job: BulkJob, *, timeout: float) -> float:
    """Confirm the draft job and wait until its row says ``finished`` (polled every
    10 ms); the seconds that took."""
    started = time.perf_counter()
    expect_status(client.post(f"/bulk/{job.pk}/start/", {}, headers=HTMX), 200)
    state = None
    while time.perf_counter() < started + timeout:
        state = BulkJob.objects.filter(pk=job.pk).values_list("state", flat=True).first()
        if state == BulkJob.State.FINISHED:
            break
        time.sleep(POLL_S)
    elapsed = time.perf_counter() - started
    if state != BulkJob.State.FINISHED:
        raise BenchError(
            f"the bulk job was still {state} after {timeout:.0f} s; the worker's last lines:\n"
            + "".join(WORKER_LOG)
        )
    job.refresh_from_db()
    return elapsed


MAX_START_LINES = 40


# The last lines the task worker printed, for the error when a job does not finish.
WORKER_LOG: deque[str] = deque(maxlen=40)


def _drain(stream: Any) -> None:
    for line in stream:
        WORKER_LOG.append(line)


@contextmanager
def worker(sandbox_url: str) -> Iterator[None]:
    """One task worker on the benchmark's database, calling the sandbox at ``sandbox_url``."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--no-startup-delay"],
        cwd=ROOT,
        env={**os.environ, "DASHBOARD_TEST_MISTRAL_API_URL": sandbox_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The system checks may print warnings first (on PostgreSQL as a superuser, the
        # audit table's least-privilege check): read on to the worker's own line.
        seen = []
        for _ in range(MAX_START_LINES):
            line = process.stdout.readline() if process.stdout else ""
            seen.append(line)
            if not line or "running" in line:
                break
        if "running" not in line:
            raise BenchError(f"the task worker did not start: {''.join(seen)[-2000:]}")
        # Read on, or a worker that logs more than the pipe holds would block on it.
        threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def run(env: Environment) -> list[Metric]:
    workspace = env.large.state.workspace(BULK_KEY)
    selection = _fine_tuned_ids(workspace, BULK_SIZE * RUNS)
    with override_settings(MISTRAL_API_URL=env.large.url), worker(env.large.url):
        runs = [_one_job(env, selection[i * BULK_SIZE : (i + 1) * BULK_SIZE]) for i in range(RUNS)]
    sequential = BULK_SIZE * LATENCY_MS / 1000
    ratios = [r["wall_seconds"] / sequential for r in runs]
    ratio = statistics.median(ratios)
    return [
        Metric(
            key="bulk.archive_ratio",
            name=f"bulk archive of {BULK_SIZE} / ({BULK_SIZE} x one call)",
            value=round(ratio, 3),
            unit="x",
            target=f"<= {TARGET}",
            met=ratio <= TARGET,
            details={
                "ratios": [round(r, 3) for r in ratios],
                "sequential_seconds": sequential,
                "bulk_concurrency": settings.BULK_CONCURRENCY,
                "latency_floor_seconds": round(
                    BULK_SIZE / settings.BULK_CONCURRENCY * LATENCY_MS / 1000, 3
                ),
                "runs": runs,
            },
        )
    ]
