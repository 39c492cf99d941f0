"""Appends stay correct under concurrency: no gaps, no duplicates, an intact chain.

PostgreSQL only: these writers run in other threads and processes, which need a
database server (the SQLite test database lives in this process's memory)."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, connection, connections
from psycopg.pq import TransactionStatus

from models_admin import audit, audit_chain, bulk_claim, roles, round_trips, storable
from models_admin.audit import Action, Actor, Kind, Outcome
from models_admin.models import AuditChainHead, AuditEntry, BulkItem, BulkJob
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


def idle() -> bool:
    """No transaction left open on this thread's connection."""
    return connection.connection.info.transaction_status == TransactionStatus.IDLE


class TestAppendInTwoRoundTrips:
    """audit_append's PostgreSQL path (outside a transaction: its own BEGIN and COMMIT)."""

    def test_a_value_the_database_refuses_is_rolled_back_then_written_escaped(
        self, transactional_db, monkeypatch
    ):
        user = make_user("writer", roles.Role.MEMBER)
        audit.event(actor=Actor(user=user), action=Action.MEMBER_ROLE, target_id="before")
        real = storable.text

        def unsafe(value: str, max_length: int | None = None, *, escape: bool = False) -> str:
            # The first try keeps the NUL byte PostgreSQL refuses; the escaped retry doesn't.
            return real(value, max_length, escape=True) if escape else value

        monkeypatch.setattr(storable, "text", unsafe)
        entry = audit.event(actor=Actor(user=user), action=Action.MEMBER_ROLE, target_id="a\x00b")

        assert idle()
        assert AuditEntry.objects.get(pk=entry.pk).target_id == "a\\u0000b"
        assert AuditChainHead.objects.get().seq == entry.seq == 2
        assert_contiguous_chain(2)

    def test_a_missing_head_row_is_made_again_from_the_log(self, transactional_db):
        user = make_user("writer", roles.Role.MEMBER)
        for n in range(3):
            audit.event(actor=Actor(user=user), action=Action.MEMBER_ROLE, target_id=f"t{n}")
        AuditChainHead.objects.all().delete()

        entry = audit.event(actor=Actor(user=user), action=Action.MEMBER_ROLE, target_id="t3")

        assert idle()
        assert entry.seq == 4
        assert_contiguous_chain(4)

    def test_a_connection_that_cannot_roll_back_is_closed(self, transactional_db):
        db = connection.settings_dict
        with pytest.raises(OperationalError), round_trips.explicit_transaction() as cursor:
            cursor.execute("BEGIN; SELECT pg_backend_pid()")
            cursor.nextset()
            pid = cursor.fetchone()[0]
            with psycopg.connect(
                host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
            ) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])
            cursor.execute("SELECT 1")

        assert connection.connection is None  # closed, not left in the transaction
        assert AuditEntry.objects.count() == 0  # and the next query opens a new one


def running_job(*, items: int) -> BulkJob:
    """A running archive job of ``items`` models, none claimed yet."""
    job = BulkJob.objects.create(
        created_by=make_user("alice", roles.Role.TEAM_ADMIN),
        action=BulkJob.Action.ARCHIVE,
        state=BulkJob.State.RUNNING,
    )
    BulkItem.objects.bulk_create(
        BulkItem(job=job, position=n, model_id=f"ft:model:{n}") for n in range(items)
    )
    return job


class TestClaimsInOneRoundTrip:
    """bulk_claim's PostgreSQL path: the lease count runs after the job's lock."""

    def test_claims_from_many_threads_never_lease_more_than_the_bound(self, transactional_db):
        job = running_job(items=40)

        def claim_all(n: int) -> int:
            try:
                return sum(bulk_claim.claim(job.pk, f"worker-{n}") is not None for _ in range(5))
            finally:
                connections.close_all()

        with ThreadPoolExecutor(12) as pool:
            claimed = sum(pool.map(claim_all, range(12)))

        leased = job.items.filter(status=BulkItem.Status.RUNNING)
        assert claimed == leased.count() == settings.BULK_CONCURRENCY
        assert sorted(leased.values_list("position", flat=True)) == list(
            range(settings.BULK_CONCURRENCY)
        )
        assert set(leased.values_list("tries", flat=True)) == {1}

    def test_the_item_just_done_is_recorded_in_the_same_trip(self, transactional_db):
        job = running_job(items=2)
        first, taken_over = bulk_claim.claim(job.pk, "w")
        done = bulk_claim.Result(first, BulkItem.Status.SUCCEEDED, "archived")

        second, _ = bulk_claim.claim(job.pk, "w", done)

        assert not taken_over and idle()
        assert (second.position, second.tries) == (1, 1)
        assert job.items.get(position=0).status == BulkItem.Status.SUCCEEDED
        assert bulk_claim.claim(job.pk, "w") is None  # nothing left to claim
        BulkJob.objects.filter(pk=job.pk).update(state=BulkJob.State.FINISHED)
        assert bulk_claim.claim(job.pk, "w") is None  # nor from a job that isn't running


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
