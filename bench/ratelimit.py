"""11. Bulk archive of 30 models behind the sandbox's rate limiter, at 1 and at 5 requests/s.

A sandbox of its own (no latency), limited per key to R requests/s (a token bucket of
max(1, R)); a team admin of its own. The draft job is prepared before the limit is set;
the clock runs from the confirmation (``POST /bulk/<id>/start/``) until the job's row
says ``finished``, run by one `manage.py run_worker` process. Every item must have
succeeded and every model be archived exactly once (admitted archive calls). The value
is wall time / (30 / R), the time the limiter itself needs for 30 calls; target <= 1.5.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.test import override_settings

from bench.bulkjob import prepare_archive, start_and_finish, wait_until_idle, worker
from bench.common import BenchError, Metric, upstream_calls
from bench.environment import Environment, _team_admin
from bench.upstream import _fine_tuned_ids
from models_admin.models import BulkItem
from models_admin.sandbox import SandboxServer

RATES = (1, 5)
ITEMS = 30
TARGET = 1.5
KEY = "sandbox-bench-ratelimit"
TIMEOUT_S = 180.0


def _one_job(env: Environment, server: Any, user: Any, ids: list[str], rate: int) -> dict[str, Any]:
    client = env.client(user)
    server.state.faults.clear()
    job = prepare_archive(client, user, ids)
    wait_until_idle(timeout=TIMEOUT_S)
    server.state.faults.set(rate_limit=rate)
    with upstream_calls(server) as calls:
        elapsed = start_and_finish(client, job, timeout=TIMEOUT_S)
    server.state.faults.clear()
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
