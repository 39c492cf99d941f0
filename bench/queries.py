"""2. Database queries per request, at two inventory sizes (the audit page's are counted
in auditlog.py, at two log sizes).

Each count is the median of three requests after a warm-up request (the first request
of a user may also record when their key was last used, at most once a minute).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench.common import LARGE_MODELS, SMALL_MODELS, Metric, expect_status
from bench.environment import ADMIN_KEY, SMALL_KEY, Environment
from bench.upstream import _fine_tuned_ids

SAMPLES = 3


def count_queries(request: Callable[[], Any], samples: int = SAMPLES) -> tuple[int, list[str]]:
    """The median number of queries one request makes, and the SQL of the last sample."""
    counts: list[int] = []
    sql: list[str] = []
    for _ in range(samples):
        with CaptureQueriesContext(connection) as captured:
            expect_status(request(), 200)
        counts.append(len(captured.captured_queries))
        sql = [q["sql"][:160] for q in captured.captured_queries]
    return int(statistics.median(counts)), sql


def _pages(env: Environment, server: Any, user: Any, key: str) -> dict[str, tuple[int, list[str]]]:
    client = env.client(user)
    model_id = _fine_tuned_ids(server.state.workspace(key), 1)[0]
    pages: dict[str, Callable[[], Any]] = {
        "list_miss": lambda: client.get("/models/?refresh=1"),
        "list_hit": lambda: client.get("/models/"),
        "detail": lambda: client.get(f"/models/{model_id}/"),
    }
    with override_settings(MISTRAL_API_URL=server.url):
        # The model page shows the model's history: both models get the same one (an
        # archive, then an unarchive, through the dashboard), so that only the size of
        # the inventory differs between the two counts.
        for name in ("model_archive", "model_unarchive"):
            client.post(reverse(f"models_admin:{name}", args=[model_id]))
        for request in pages.values():
            expect_status(request(), 200)  # warm-up
        return {name: count_queries(request) for name, request in pages.items()}


def equal_counts_metric(
    key: str,
    name: str,
    sizes: tuple[str, str],
    small: tuple[int, list[str]],
    large: tuple[int, list[str]],
) -> Metric:
    return Metric(
        key=key,
        name=name,
        value=large[0],
        unit="queries",
        target="equal",
        met=small[0] == large[0],
        details={
            sizes[0]: small[0],
            sizes[1]: large[0],
            "shown": f"{small[0]} -> {large[0]}",
            "queries_at_" + sizes[1]: large[1],
        },
    )


def run(env: Environment) -> list[Metric]:
    small = _pages(env, env.small, env.small_user, SMALL_KEY)
    large = _pages(env, env.large, env.admin, ADMIN_KEY)
    sizes = (f"{SMALL_MODELS}_models", f"{LARGE_MODELS}_models")
    label = f"({SMALL_MODELS} -> {LARGE_MODELS:,} models)"
    return [
        equal_counts_metric(
            "db_queries.list_miss",
            f"db queries: list page, miss {label}",
            sizes,
            small["list_miss"],
            large["list_miss"],
        ),
        equal_counts_metric(
            "db_queries.list_hit",
            f"db queries: list page, hit {label}",
            sizes,
            small["list_hit"],
            large["list_hit"],
        ),
        equal_counts_metric(
            "db_queries.detail",
            f"db queries: model page {label}",
            sizes,
            small["detail"],
            large["detail"],
        ),
    ]
