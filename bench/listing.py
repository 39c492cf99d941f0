"""3. The list page against the upstream call it is built from (2,000 models, 50 ms latency).

Rounds of three, interleaved so that each sees the same conditions: a raw list call
(GET /v1/models through the app's own pooled httpx client, body read, not parsed), the
full list page on a cache miss (``?refresh=1``: one upstream call, parsing, the
inventory, caching it, rendering) and the page again on the cache hit that leaves.
"""

from __future__ import annotations

import json
from typing import Any

from django.test import override_settings

from bench.common import LARGE_MODELS, LATENCY_MS, BenchError, Metric, p50, summary_ms, timed
from bench.environment import ADMIN_KEY, Environment
from models_admin import remote
from models_admin.inventory import PAGE_SIZE

WARMUP = 5
ROUNDS = 30
TARGET = 1.2


def _check_page(response: Any) -> None:
    if response.status_code != 200 or response.content.count(b"data-model-id=") != PAGE_SIZE:
        raise BenchError(
            f"the list page did not show {PAGE_SIZE} models (status {response.status_code})"
        )


def run(env: Environment) -> list[Metric]:
    server = env.large
    client = env.client(env.admin)
    pool = remote.http_pool()
    url = f"{server.url}/v1/models"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def raw() -> int:
        response = pool.get(url, headers=headers)
        response.raise_for_status()
        return len(response.content)

    raw_times: list[float] = []
    decode_times: list[float] = []
    miss_times: list[float] = []
    hit_times: list[float] = []
    with override_settings(MISTRAL_API_URL=server.url):
        for i in range(WARMUP + ROUNDS):
            raw_s, size = timed(raw)
            miss_s, miss = timed(lambda: client.get("/models/?refresh=1"))
            hit_s, hit = timed(lambda: client.get("/models/"))
            decode_s, _ = timed(lambda: json.loads(pool.get(url, headers=headers).content))
            if i == 0:
                _check_page(miss)
                _check_page(hit)
            if i >= WARMUP:
                raw_times.append(raw_s)
                miss_times.append(miss_s)
                hit_times.append(hit_s)
                decode_times.append(decode_s)
    raw_p50 = p50(raw_times)
    common = {
        "latency_ms": LATENCY_MS,
        "models": LARGE_MODELS,
        "upstream_body_bytes": size,
        "raw_call": summary_ms(raw_times),
        "raw_call_with_json_decode": summary_ms(decode_times),
    }
    metrics = []
    for key, label, samples in (
        ("list_ratio.miss", "list page p50 / raw list call p50, cache miss", miss_times),
        ("list_ratio.hit", "list page p50 / raw list call p50, cache hit", hit_times),
    ):
        ratio = p50(samples) / raw_p50
        metrics.append(
            Metric(
                key=key,
                name=label,
                value=round(ratio, 3),
                unit="x",
                target=f"<= {TARGET}",
                met=ratio <= TARGET,
                details={**common, "page": summary_ms(samples)},
            )
        )
    return metrics
