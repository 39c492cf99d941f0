"""12. The inventory sync at 10,000 fine-tuned models per key (issue 14).

A sandbox of its own: 10,000 fine-tuned models per key, 50 ms latency. The baseline
sync (the first list of the workspace: every snapshot row written) is timed once and
reported in ``details``; the measured sync is the scheduled one, against a snapshot in
place, with 5 models renamed outside the dashboard before each round (5 entries
appended, 5 rows updated). Rounds of two, interleaved: the raw list call (GET
/v1/models through the app's pooled client, body read, not parsed) and
``sync.sync_key`` (the list call, parsing, comparison, writes).

The query count of a sync is compared at 100 and 10,000 models (the same 5 changes):
bulk writes make it the same.
"""

from __future__ import annotations

import gc
from typing import Any

from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from bench.common import LATENCY_MS, BenchError, Metric, p50, summary_ms, timed
from bench.environment import Environment, _team_admin
from models_admin import remote, sync
from models_admin.models import ApiCredential
from models_admin.sandbox import SandboxServer

MODELS = 10_000
SMALL = 100
CHANGES = 5
WARMUP = 2
ROUNDS = 10
TARGET = 1.5
KEY = "sandbox-bench-sync"
SMALL_KEY = "sandbox-bench-sync-small"


def _rename_outside(server: Any, round_: int, key: str = KEY) -> None:
    """CHANGES models renamed straight through the sandbox, as a script would."""
    workspace = server.state.workspace(key)
    ids = [i for i, card in workspace.models.items() if card.get("type") == "fine-tuned"]
    for model_id in ids[:CHANGES]:
        response = remote.http_pool().patch(
            f"{server.url}/v1/fine_tuning/models/{model_id}",
            headers={"Authorization": f"Bearer {key}"},
            json={"name": f"bench-{round_}-{model_id[-8:]}"},
        )
        response.raise_for_status()


def _sync(credential: ApiCredential, expected: int, key: str = KEY) -> sync.KeyResult:
    result = sync.sync_key(credential, key)
    if result.status != "synced" or result.recorded != expected:
        raise BenchError(f"the sync did not record {expected} change(s): {result}")
    return result


def _queries(server: Any, credential: ApiCredential, key: str) -> int:
    """The queries of a sync that finds CHANGES renames, the snapshot in place."""
    with override_settings(MISTRAL_API_URL=server.url):
        _rename_outside(server, 99, key)
        with CaptureQueriesContext(connection) as queries:
            _sync(credential, CHANGES, key)
    return len(queries)


def run(env: Environment) -> list[Metric]:
    server = SandboxServer(models=MODELS, latency_ms=LATENCY_MS).start()
    small = SandboxServer(models=SMALL).start()
    # As run.py does before each section: the sandboxes' workspaces (20,000 cards) are
    # no part of the app's heap, and a full collection walking them would land in the
    # sync's timings (it allocates containers, the raw call does not).
    gc.collect()
    gc.freeze()
    try:
        return _measure(server, small)
    finally:
        server.stop()
        small.stop()


def _measure(server: Any, small: Any) -> list[Metric]:
    credential = ApiCredential.objects.get(user=_team_admin("bench-sync", KEY))
    pool = remote.http_pool()
    url, headers = f"{server.url}/v1/models", {"Authorization": f"Bearer {KEY}"}

    def raw() -> int:
        response = pool.get(url, headers=headers)
        response.raise_for_status()
        return len(response.content)

    raw_times: list[float] = []
    sync_times: list[float] = []
    with override_settings(MISTRAL_API_URL=server.url):
        baseline_s, baseline = timed(lambda: sync.sync_key(credential, KEY))
        if baseline.status != "baseline" or baseline.models != MODELS:
            raise BenchError(f"the baseline sync did not see {MODELS} models: {baseline}")
        for i in range(WARMUP + ROUNDS):
            _rename_outside(server, i + 1)
            raw_s, size = timed(raw)
            sync_s, _ = timed(lambda: _sync(credential, CHANGES))
            if i >= WARMUP:
                raw_times.append(raw_s)
                sync_times.append(sync_s)
    ratio = p50(sync_times) / p50(raw_times)

    small_credential = ApiCredential.objects.get(user=_team_admin("bench-sync-small", SMALL_KEY))
    with override_settings(MISTRAL_API_URL=small.url):
        sync.sync_key(small_credential, SMALL_KEY)  # its baseline
    few = _queries(small, small_credential, SMALL_KEY)
    many = _queries(server, credential, KEY)
    return [
        Metric(
            "sync.ratio",
            f"sync of {MODELS:,} models / one list call",
            round(ratio, 3),
            "x",
            f"<= {TARGET}",
            ratio <= TARGET,
            {
                "raw_ms": summary_ms(raw_times),
                "sync_ms": summary_ms(sync_times),
                "baseline_sync_ms": round(baseline_s * 1000, 1),
                "list_bytes": size,
                "changes_per_round": CHANGES,
                "latency_ms": LATENCY_MS,
            },
        ),
        Metric(
            "db_queries.sync",
            f"db queries: sync ({SMALL} -> {MODELS:,} models)",
            f"{few} -> {many}",
            "",
            "equal",
            few == many,
            {"small": few, "large": many},
        ),
    ]
