"""Appends stay correct under concurrency: no gaps, no duplicates, an intact chain.

PostgreSQL only: these writers run in other threads and processes, which need a
database server (the SQLite test database lives in this process's memory)."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.db import connection, connections

from models_admin import audit, audit_chain, roles
from models_admin.audit import Action, Actor, Kind, Outcome
from models_admin.models import AuditEntry
from tests import servers
from tests.conftest import ALICE_KEY, make_user

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (run with DATABASE_URL=postgres://...)")


def assert_contiguous_chain(expected: int) -> None:
    seqs = list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, expected + 1))
    report = audit_chain.verify_chain()
    assert report.ok, report.problem


class TestParallelWriters:
    def test_threads_appending_at_once(self, transactional_db):
        user = make_user("writer", roles.Role.MEMBER)

        def write(n: int) -> None:
            try:
                for i in range(25):
                    audit.event(
                        actor=Actor(user=user), action=Action.MEMBER_ROLE, target_id=f"t{n}-{i}"
                    )
            finally:
                connections.close_all()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(8)))

        assert_contiguous_chain(200)


@pytest.fixture
def gunicorn(transactional_db, sandbox):
    """The dashboard under gunicorn with several workers, on this test database."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DASHBOARD_TEST_MISTRAL_API_URL": sandbox.url,
    }
    with servers.gunicorn(env, "--workers", "4", "--timeout", "30", "--log-level", "warning") as (
        base,
        _,
    ):
        yield base


class TestGunicornWorkers:
    def test_parallel_deletes_through_several_workers(self, gunicorn, sandbox, client):
        alice = make_user("alice", roles.Role.TEAM_ADMIN, ALICE_KEY)
        client.force_login(alice)
        cookies = {"sessionid": client.cookies["sessionid"].value}
        models = [
            c["id"]
            for c in sandbox.state.workspace(ALICE_KEY).models.values()
            if c["type"] == "fine-tuned"
        ][:24]
        # 12 requests queue for 4 workers: httpx's 5 s default is too short a wait on a
        # busy machine (it is a limit, not a measurement: every request must answer).
        with httpx.Client(base_url=gunicorn, cookies=cookies, timeout=60) as http:
            page = http.get(f"/models/{models[0]}/delete/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            csrf = {"csrfmiddlewaretoken": token}

            def delete(model_id: str) -> int:
                data = {**csrf, "confirm_id": model_id, "reason": "parallel cleanup"}
                return http.post(
                    f"/models/{model_id}/delete/", data=data, headers={"Referer": gunicorn}
                ).status_code

            with ThreadPoolExecutor(12) as pool:
                statuses = list(pool.map(delete, models))

        assert statuses == [302] * len(models)
        assert_contiguous_chain(2 * len(models))
        attempts = AuditEntry.objects.filter(kind=Kind.ATTEMPT, action=Action.MODEL_DELETE)
        assert attempts.count() == len(models)
        for attempt in attempts:
            assert [o.outcome for o in attempt.outcomes.all()] == [Outcome.SUCCEEDED]
        assert not set(models) & set(sandbox.state.workspace(ALICE_KEY).models)
