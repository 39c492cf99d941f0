"""1. Upstream calls per request: the sandbox's request log, read around one request each.

On the 2,000-model workspace: the list on a cache miss (cache cleared first) and on a
hit, a model's page, and three changes: archive with the list cached (the usual case:
the user clicked in the list), archive with the cache cleared, and a rename (whose form
carries the values the user saw, so the service must retrieve the model to compare).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.cache import cache
from django.test import override_settings

from bench.common import BenchError, Metric, describe_calls, expect_status, upstream_calls
from bench.environment import ADMIN_KEY, Environment


def _fine_tuned_ids(workspace: Any, count: int) -> list[str]:
    ids = sorted(
        card["id"]
        for card in workspace.models.values()
        if card.get("type") == "fine-tuned" and card.get("archived") is False
    )
    if len(ids) < count:
        raise BenchError(f"the sandbox workspace has only {len(ids)} unarchived fine-tuned models")
    return ids[:count]


def _metric(key: str, name: str, calls: list[Any], limit: int, *, exact: bool) -> Metric:
    count = len(calls)
    return Metric(
        key=key,
        name=name,
        value=count,
        unit="calls",
        target=f"= {limit}" if exact else f"<= {limit}",
        met=count == limit if exact else count <= limit,
        details={"calls": describe_calls(calls)},
    )


def run(env: Environment) -> list[Metric]:
    server = env.large
    client = env.client(env.admin)
    workspace = server.state.workspace(ADMIN_KEY)
    warm_id, cold_id, rename_id, detail_id = _fine_tuned_ids(workspace, 4)
    with override_settings(MISTRAL_API_URL=server.url):
        cache.clear()
        with upstream_calls(server) as miss:
            expect_status(client.get("/models/"), 200)
        with upstream_calls(server) as hit:
            expect_status(client.get("/models/"), 200)
        with upstream_calls(server) as detail:
            expect_status(client.get(f"/models/{detail_id}/"), 200)

        # Archive from the list: the inventory is cached (the request above left it so).
        expect_status(client.get("/models/"), 200)
        with upstream_calls(server) as archive_warm:
            expect_status(client.post(f"/models/{warm_id}/archive/"), 302)
        cache.clear()
        with upstream_calls(server) as archive_cold:
            expect_status(client.post(f"/models/{cold_id}/archive/"), 302)

        card = workspace.get(rename_id)
        new_name = f"{card.get('name') or rename_id} (renamed by bench)"[:128]
        form = {
            "name": new_name,
            "description": card.get("description") or "",
            "expected": json.dumps(
                {"name": card.get("name"), "description": card.get("description")}
            ),
        }
        with upstream_calls(server) as rename:
            expect_status(client.post(f"/models/{rename_id}/edit/", form), 302)

    # The changes must have happened, or the counts mean nothing.
    if not (workspace.get(warm_id)["archived"] and workspace.get(cold_id)["archived"]):
        raise BenchError("an archive request answered a redirect but the model is not archived")
    if workspace.get(rename_id).get("name") != new_name:
        raise BenchError("the rename request answered a redirect but the model was not renamed")

    return [
        _metric(
            "upstream_calls.list_miss", "upstream calls: list page, cache miss", miss, 1, exact=True
        ),
        _metric(
            "upstream_calls.list_hit", "upstream calls: list page, cache hit", hit, 0, exact=True
        ),
        _metric("upstream_calls.detail", "upstream calls: model page", detail, 1, exact=True),
        _metric(
            "upstream_calls.archive_cached",
            "upstream calls: archive (list cached)",
            archive_warm,
            2,
            exact=False,
        ),
        _metric(
            "upstream_calls.archive_uncached",
            "upstream calls: archive (cache empty)",
            archive_cold,
            2,
            exact=False,
        ),
        _metric("upstream_calls.rename", "upstream calls: rename", rename, 2, exact=False),
    ]
