"""11. Bulk archive of 30 models behind the sandbox's rate limiter, at 1 and at 5 requests/s.

A sandbox of its own (no latency), limited per key to R requests/s (a token bucket of
max(1, R)); a team admin of its own. The draft job is prepared before the limit is set;
the clock runs from the confirmation (``POST /bulk/<id>/start/``) until the job's row
says ``finished``, run by one `manage.py run_worker` process. Every item must have
succeeded and every model be archived exactly once (admitted archive calls). The value
is wall time / (30 / R), the time the limiter itself needs for 30 calls; target <= 1.5.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from django.test import override_settings

from bench.bulkjob import worker
from bench.common import HTMX, BenchError, Metric, expect_status, upstream_calls
from bench.environment import Environment, _team_admin
from bench.upstream import _fine_tuned_ids
from models_admin.models import BulkItem, BulkJob
from models_admin.sandbox import SandboxServer

RATES = (1, 5)
ITEMS = 30
TARGET = 1.5
KEY = "sandbox-bench-ratelimit"
TIMEOUT_S = 180.0
POLL_S = 0.01


def _one_job(env: Environment, server: Any, user: Any, ids: list[str], rate: int) -> dict[str, Any]:
    client = env.client(user)
    server.state.faults.clear()
    prepared = client.post("/models/bulk/", {"action": "archive", "ids": ids}, headers=HTMX)
    expect_status(prepared, 200)
    job = BulkJob.objects.filter(created_by=user, state=BulkJob.State.DRAFT).latest("created_at")
    if job.items.count() != len(ids):
        raise BenchError(f"the draft job has {job.items.count()} items, not {len(ids)}")
    server.state.faults.set(rate_limit=rate)
    with upstream_calls(server) as calls:
        started = time.perf_counter()
        expect_status(client.post(f"/bulk/{job.pk}/start/", {}, headers=HTMX), 200)
        state = None
        while time.perf_counter() < started + TIMEOUT_S:
            state = BulkJob.objects.filter(pk=job.pk).values_list("state", flat=True).first()
            if state == BulkJob.State.FINISHED:
                break
            time.sleep(POLL_S)
        elapsed = time.perf_counter() - started
    server.state.faults.clear()
    if state != BulkJob.State.FINISHED:
        raise BenchError(f"the bulk job was still {state} after {TIMEOUT_S:.0f} s")
    statuses = Counter(job.items.values_list("status", flat=True))
    if statuses != {BulkItem.Status.SUCCEEDED: len(ids)}:
        raise BenchError(f"bulk items did not all succeed: {dict(statuses)}")
    workspace = server.state.workspace(KEY)
    if any(not workspace.get(model_id)["archived"] for model_id in ids):
        raise BenchError("some models are not archived upstream after the job")
    archives = sum(1 for c in calls if c.method == "POST" and c.path.endswith("/archive"))
    return {
        "wall_seconds": round(elapsed, 3),
        "limiter_seconds": ITEMS / rate,
        "archive_calls": archives,
        "refused_429": archives - len(ids),  # each model archived once; the rest were refused
        "other_calls": len(calls) - archives,
    }


def run(env: Environment) -> list[Metric]:
    user = _team_admin("bench-ratelimit", KEY)
    metrics = []
    with SandboxServer(models=100) as server:
        selection = _fine_tuned_ids(server.state.workspace(KEY), ITEMS * len(RATES))
        with override_settings(MISTRAL_API_URL=server.url), worker(server.url):
            for n, rate in enumerate(RATES):
                ids = selection[n * ITEMS : (n + 1) * ITEMS]
                result = _one_job(env, server, user, ids, rate)
                ratio = result["wall_seconds"] / result["limiter_seconds"]
                metrics.append(
                    Metric(
                        key=f"bulk.ratelimit_{rate}",
                        name=f"bulk archive of {ITEMS} behind a limiter at {rate}/s / ({ITEMS} / {rate} s)",
                        value=round(ratio, 3),
                        unit="x",
                        target=f"<= {TARGET}",
                        met=ratio <= TARGET,
                        details=result,
                    )
                )
    return metrics
