"""Bulk archive, unarchive and delete: selection, one confirmation, a run by the task
workers with bounded concurrency, per-item results, retries, and one audit record per
model.

A task worker runs in a thread of the test process (tests/workers.py), with its own
database connections, so these tests use committed data (transactional_db). Real
worker processes (killed, recycled, shared) are in test_worker_processes.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from pytest_django.asserts import assertContains, assertTemplateUsed

from models_admin import audit, audit_chain, bulk, bulk_claim, bulk_run, roles, tasks
from models_admin.audit import Action, Kind, Outcome
from models_admin.models import AuditEntry, BulkItem, BulkJob
from tests.conftest import ALICE_KEY, BOB_KEY, make_user
from tests.helpers import HTMX, fine_tuned_cards, url
from tests.workers import Hold, holding, wait_until, worker_thread


@pytest.fixture
def alice(transactional_db, sandbox):
    return make_user("alice", roles.Role.TEAM_ADMIN, ALICE_KEY)


@pytest.fixture
def bob(transactional_db, sandbox):
    return make_user("bob", roles.Role.MEMBER, BOB_KEY)


@pytest.fixture(autouse=True)
def worker(transactional_db):
    with worker_thread() as running:
        yield running


def wait_for(job: BulkJob) -> BulkJob:
    """Wait until the worker has finished the job (a bounded poll of the database)."""
    wait_until(
        lambda: BulkJob.objects.filter(pk=job.pk, state=BulkJob.State.FINISHED).exists(),
        what=f"job {job.pk} to finish",
    )
    job.refresh_from_db()
    return job


@pytest.fixture
def hold_posts(sandbox, settings) -> Iterator[Hold]:
    settings.MISTRAL_API_TIMEOUT = 60  # held requests must not time out and be retried
    with holding(sandbox, "POST") as hold:
        yield hold


def prepare(client, action: str, ids=(), **data):
    return client.post(
        url("bulk_prepare"), {"action": action, "ids": list(ids), **data}, headers=HTMX
    )


def start(client, job: BulkJob, **data):
    return client.post(url("bulk_start", job.pk), data, headers=HTMX)


class TestPrepare:
    def test_the_selection_becomes_a_draft_to_confirm(self, as_alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:3]]

        response = prepare(as_alice, "archive", picked)

        assertTemplateUsed(response, "models_admin/_bulk_job.html")
        job = BulkJob.objects.get()
        assert job.state == BulkJob.State.DRAFT
        assert [i.model_id for i in job.items.all()] == picked
        assertContains(response, "Archive 3 models?")
        for model_id in picked:
            assertContains(response, model_id)
        assert all(
            c["archived"] is False for c in fine_tuned_cards(sandbox)[:3]
        )  # nothing happened yet

    def test_only_models_the_action_applies_to_are_kept(self, as_alice, sandbox):
        archived = fine_tuned_cards(sandbox, archived=True)[0]["id"]
        active = fine_tuned_cards(sandbox)[0]["id"]
        base = next(
            c["id"]
            for c in sandbox.state.workspace(ALICE_KEY).models.values()
            if c["type"] == "base"
        )

        prepare(as_alice, "archive", [archived, active, base, "ft:not:in:the:list"])

        assert [i.model_id for i in BulkJob.objects.get().items.all()] == [active]

    def test_all_matching_the_filter(self, as_alice, sandbox):
        root = fine_tuned_cards(sandbox)[0]["root"]
        expected = {c["id"] for c in fine_tuned_cards(sandbox) if c["root"] == root}

        prepare(as_alice, "archive", all_matching="1", root=root, type="fine-tuned")

        assert {i.model_id for i in BulkJob.objects.get().items.all()} == expected

    def test_nothing_that_qualifies_is_a_message(self, as_alice, sandbox):
        response = prepare(as_alice, "unarchive", [fine_tuned_cards(sandbox)[0]["id"]])

        assert response["HX-Reswap"] == "none"
        assertContains(response, "pick archived fine-tuned models")
        assert not BulkJob.objects.exists()

    def test_members_cannot_prepare_a_delete(self, client, bob, sandbox):
        client.force_login(bob)

        response = prepare(client, "delete", [fine_tuned_cards(sandbox, BOB_KEY)[0]["id"]])

        assert response.status_code == 403
        assert not BulkJob.objects.exists()
        (denied,) = AuditEntry.objects.all()
        assert (denied.action, denied.outcome) == (Action.MODEL_DELETE, Outcome.DENIED)

    def test_without_javascript_it_is_a_page(self, as_alice, sandbox):
        response = as_alice.post(
            url("bulk_prepare"), {"action": "archive", "ids": [fine_tuned_cards(sandbox)[0]["id"]]}
        )

        job = BulkJob.objects.get()
        assert response.status_code == 302 and response["Location"] == url("bulk_job", job.pk)
        assertContains(as_alice.get(response["Location"]), "Archive 1 model?")


class TestRun:
    def test_a_bulk_archive_runs_and_reports_each_model(self, as_alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:6]]
        prepare(as_alice, "archive", picked)
        job = BulkJob.objects.get()

        response = start(as_alice, job)

        assertContains(response, 'hx-trigger="every 1s"')  # it polls while running
        wait_for(job)
        assert set(job.items.values_list("status", flat=True)) == {BulkItem.Status.SUCCEEDED}
        assert all(sandbox.state.workspace(ALICE_KEY).get(i)["archived"] for i in picked)
        finished = as_alice.get(url("bulk_job", job.pk), headers=HTMX)
        assert "every 1s" not in finished.content.decode()
        assert "bulkFinished" in finished["HX-Trigger"]
        assertContains(finished, "Archive: 6 done")

    def test_every_model_is_audited_on_its_own(self, as_alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:5]]
        prepare(as_alice, "delete", picked)
        job = BulkJob.objects.get()

        start(as_alice, job, confirm_count="5", reason="quarterly cleanup")
        wait_for(job)

        attempts = AuditEntry.objects.filter(kind=Kind.ATTEMPT, action=Action.MODEL_DELETE)
        assert sorted(a.target_id for a in attempts) == sorted(picked)
        for attempt in attempts:
            assert attempt.reason == "quarterly cleanup"
            assert attempt.actor_username == "alice"
            assert attempt.actor_role == roles.Role.TEAM_ADMIN  # looked up once per job
            assert [o.outcome for o in attempt.outcomes.all()] == [Outcome.SUCCEEDED]
            assert attempt.before and attempt.before["id"] == attempt.target_id
        assert audit_chain.verify_chain().ok
        assert not set(picked) & set(sandbox.state.workspace(ALICE_KEY).models)

    def test_one_call_per_model_at_most_eight_at_once(self, as_alice, sandbox, hold_posts):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:20]]
        prepare(as_alice, "archive", picked)
        job = BulkJob.objects.get()
        sandbox.state.requests.clear()
        sandbox.state.peak_in_flight = 0

        start(as_alice, job)
        hold_posts.until_waiting(8)
        held = sandbox.state.in_flight
        hold_posts.release()
        wait_for(job)

        assert held == 8
        assert sandbox.state.peak_in_flight == 8
        archive_calls = [r for r in sandbox.state.requests if r.method == "POST"]
        assert sorted(r.path for r in archive_calls) == sorted(
            f"/v1/fine_tuning/models/{i}/archive" for i in picked
        )
        # The cached inventory gave each item its card: no retrieve per model.
        assert [r for r in sandbox.state.requests if r.method == "GET"] == []

    def test_the_bound_is_configurable(self, as_alice, sandbox, settings, hold_posts):
        settings.BULK_CONCURRENCY = 2
        prepare(as_alice, "archive", [c["id"] for c in fine_tuned_cards(sandbox)[:8]])
        job = BulkJob.objects.get()
        sandbox.state.peak_in_flight = 0

        start(as_alice, job)
        hold_posts.until_waiting(2)
        held = sandbox.state.in_flight
        hold_posts.release()
        wait_for(job)

        assert held == sandbox.state.peak_in_flight == 2
        assert len([r for r in sandbox.state.requests if r.method == "POST"]) == 8

    def test_a_bulk_unarchive(self, as_alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox, archived=True)[:3]]
        prepare(as_alice, "unarchive", picked)
        job = BulkJob.objects.get()

        start(as_alice, job)
        wait_for(job)

        assert set(job.items.values_list("status", flat=True)) == {BulkItem.Status.SUCCEEDED}
        assert not any(sandbox.state.workspace(ALICE_KEY).get(i)["archived"] for i in picked)
        unarchives = [r for r in sandbox.state.requests if r.method == "DELETE"]
        assert sorted(r.path for r in unarchives) == sorted(
            f"/v1/fine_tuning/models/{i}/archive" for i in picked
        )
        outcomes = AuditEntry.objects.filter(kind=Kind.OUTCOME, action=Action.MODEL_UNARCHIVE)
        assert [o.changes for o in outcomes] == [{"archived": [True, False]}] * 3

    def test_a_job_prepared_long_ago_reads_the_inventory_again(self, as_alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:3]]
        prepare(as_alice, "archive", picked)
        job = BulkJob.objects.get()
        BulkJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
        cache.clear()
        sandbox.state.requests.clear()

        start(as_alice, job)
        wait_for(job)

        reads = [r.path for r in sandbox.state.requests if r.method == "GET"]
        assert reads == ["/v1/models"]  # once for the job, not once per model

    def test_without_the_inventory_each_item_reads_its_own_card(self, as_alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:3]]
        prepare(as_alice, "archive", picked)
        job = BulkJob.objects.get()
        BulkJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
        cache.clear()
        sandbox.state.requests.clear()
        sandbox.state.faults.set(fail_status=422, fail_times=1, match="GET /v1/models$")

        start(as_alice, job)
        wait_for(job)

        assert set(job.items.values_list("status", flat=True)) == {BulkItem.Status.SUCCEEDED}
        reads = [r.path for r in sandbox.state.requests if r.method == "GET"]
        assert sorted(reads) == sorted(["/v1/models", *(f"/v1/models/{i}" for i in picked)])
        for attempt in AuditEntry.objects.filter(kind=Kind.ATTEMPT):
            assert attempt.outcomes.get().before["id"] == attempt.target_id

    def test_a_partial_failure_loses_nothing_and_can_be_retried(self, as_alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:6]]
        broken = picked[1::2]
        pattern = "|".join(p.replace(".", r"\.") for p in broken)
        sandbox.state.faults.set(fail_status=503, fail_times=100, match=f"POST .*({pattern})")
        prepare(as_alice, "archive", picked)
        job = BulkJob.objects.get()

        start(as_alice, job)
        wait_for(job)

        failed = list(job.items.filter(status=BulkItem.Status.FAILED))
        assert sorted(i.model_id for i in failed) == sorted(broken)
        assert all("HTTP 503" in i.message for i in failed)
        outcomes = AuditEntry.objects.filter(kind=Kind.OUTCOME)
        assert outcomes.filter(outcome=Outcome.FAILED).count() == 3
        assert outcomes.filter(outcome=Outcome.SUCCEEDED).count() == 3
        page = as_alice.get(url("bulk_job", job.pk), headers=HTMX)
        assertContains(page, "Retry the 3 failed")

        sandbox.state.faults.clear()
        response = as_alice.post(url("bulk_retry", job.pk), headers=HTMX)

        retry = BulkJob.objects.exclude(pk=job.pk).get()
        wait_for(retry)
        assertTemplateUsed(response, "models_admin/_bulk_job.html")
        assert sorted(retry.items.values_list("model_id", flat=True)) == sorted(broken)
        assert set(retry.items.values_list("status", flat=True)) == {BulkItem.Status.SUCCEEDED}
        assert all(sandbox.state.workspace(ALICE_KEY).get(i)["archived"] for i in picked)

    def test_rate_limits_are_waited_out_together(self, as_alice, sandbox):
        prepare(as_alice, "archive", [c["id"] for c in fine_tuned_cards(sandbox)[:6]])
        job = BulkJob.objects.get()
        sandbox.state.faults.set(fail_status=429, fail_times=2, retry_after="0.3", match="POST")

        start(as_alice, job)
        wait_for(job)

        assert set(job.items.values_list("status", flat=True)) == {BulkItem.Status.SUCCEEDED}
        assert (
            len([r for r in sandbox.state.requests if r.method == "POST"]) == 8
        )  # 6 + the 2 refused


class TestConfirm:
    def test_a_delete_needs_the_count_typed_and_a_reason(self, as_alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:4]]
        prepare(as_alice, "delete", picked)
        job = BulkJob.objects.get()

        wrong = start(as_alice, job, confirm_count="3", reason="cleanup")
        no_reason = start(as_alice, job, confirm_count="4", reason="")

        assertContains(wrong, "Type 4, the number of models")
        assertContains(no_reason, "This field is required")
        job.refresh_from_db()
        assert job.state == BulkJob.State.DRAFT
        assert all(i in sandbox.state.workspace(ALICE_KEY).models for i in picked)

    def test_a_job_starts_once(self, as_alice, sandbox):
        prepare(as_alice, "archive", [fine_tuned_cards(sandbox)[0]["id"]])
        job = BulkJob.objects.get()
        start(as_alice, job)

        again = start(as_alice, job)

        wait_for(job)
        assertContains(again, "already started")
        assert AuditEntry.objects.filter(kind=Kind.ATTEMPT).count() == 1

    def test_someone_elses_job_is_not_found(self, as_alice, client, sandbox, transactional_db):
        prepare(as_alice, "archive", [fine_tuned_cards(sandbox)[0]["id"]])
        job = BulkJob.objects.get()
        carol = make_user("carol", roles.Role.MEMBER, "sandbox-carol-key-1234")
        client.force_login(carol)

        assert client.get(url("bulk_job", job.pk)).status_code == 403
        assert client.post(url("bulk_start", job.pk)).status_code == 403

    def test_without_javascript_the_page_refreshes_while_running(
        self, as_alice, sandbox, hold_posts
    ):
        prepare(as_alice, "archive", [c["id"] for c in fine_tuned_cards(sandbox)[:2]])
        job = BulkJob.objects.get()

        response = as_alice.post(url("bulk_start", job.pk), {})
        hold_posts.until_waiting(1)
        page = as_alice.get(response["Location"])
        hold_posts.release()

        assert response["Location"] == url("bulk_job", job.pk)
        assertContains(page, '<meta http-equiv="refresh" content="2">')
        wait_for(job)


class TestRunner:
    def run_started(self, job: BulkJob, **fields) -> BulkJob:
        """Run a started job in this thread (the queued task is run by nobody else:
        it finds the job finished)."""
        BulkJob.objects.filter(pk=job.pk).update(state=BulkJob.State.RUNNING, **fields)
        assert bulk_run.run(job.pk, worker="this-test")
        job.refresh_from_db()
        return job

    def test_without_a_usable_key_each_item_fails_and_is_audited(self, as_alice, alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:3]]
        prepare(as_alice, "archive", picked)
        job = BulkJob.objects.get()
        alice.api_credential.delete()  # removed between the confirmation and the run
        before = len(sandbox.state.requests)

        job = self.run_started(job)

        assert job.state == BulkJob.State.FINISHED
        assert set(job.items.values_list("status", flat=True)) == {BulkItem.Status.FAILED}
        attempts = AuditEntry.objects.filter(kind=Kind.ATTEMPT, action=Action.MODEL_ARCHIVE)
        assert sorted(a.target_id for a in attempts) == sorted(picked)
        assert {o.outcome for a in attempts for o in a.outcomes.all()} == {Outcome.FAILED}
        assert len(sandbox.state.requests) == before  # nothing was sent

    def test_a_model_deleted_meanwhile_counts_as_deleted(self, as_alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:2]]
        prepare(as_alice, "delete", picked)
        job = BulkJob.objects.get()
        sandbox.state.workspace(ALICE_KEY).delete(picked[0])  # by someone else

        job = self.run_started(job, reason="cleanup")

        gone, deleted = job.items.all()
        assert (gone.status, gone.message) == (BulkItem.Status.SUCCEEDED, "It was already gone.")
        assert (deleted.status, deleted.message) == (BulkItem.Status.SUCCEEDED, "")

    def test_a_model_gone_before_its_archive_fails(self, as_alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:2]]
        prepare(as_alice, "archive", picked)
        job = BulkJob.objects.get()
        sandbox.state.workspace(ALICE_KEY).delete(picked[0])

        job = self.run_started(job)

        assert list(job.items.values_list("status", flat=True)) == [
            BulkItem.Status.FAILED,
            BulkItem.Status.SUCCEEDED,
        ]

    def test_a_role_lost_before_the_run_fails_each_item_as_denied(self, as_alice, alice, sandbox):
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:2]]
        prepare(as_alice, "delete", picked)
        job = BulkJob.objects.get()
        roles.set_role(alice, roles.Role.MEMBER)

        job = self.run_started(job, reason="cleanup")

        assert set(job.items.values_list("status", flat=True)) == {BulkItem.Status.FAILED}
        denied = AuditEntry.objects.filter(outcome=Outcome.DENIED, action=Action.MODEL_DELETE)
        assert sorted(denied.values_list("target_id", flat=True)) == sorted(picked)
        assert all(i in sandbox.state.workspace(ALICE_KEY).models for i in picked)

    def test_a_job_whose_creator_is_gone_fails_rather_than_hangs(self, as_alice, alice, sandbox):
        prepare(as_alice, "archive", [c["id"] for c in fine_tuned_cards(sandbox)[:2]])
        job = BulkJob.objects.get()
        alice.delete()

        job = self.run_started(job)

        assert job.state == BulkJob.State.FINISHED
        assert set(job.items.values_list("status", flat=True)) == {BulkItem.Status.FAILED}


class TestTakeover:
    """What a worker that died mid-item leaves (its lease expired), and how the next
    worker settles it by reading the model back, then sends only what is missing."""

    def died_holding(self, client, sandbox, count: int) -> tuple[BulkJob, list[str]]:
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:count]]
        prepare(client, "archive", picked)
        job = BulkJob.objects.get()
        BulkJob.objects.filter(pk=job.pk).update(
            state=BulkJob.State.RUNNING, started_at=timezone.now() - timedelta(minutes=5)
        )
        job.items.update(
            status=BulkItem.Status.RUNNING,
            worker="dead-worker",
            tries=1,
            lease_until=timezone.now() - timedelta(seconds=1),
        )
        job.refresh_from_db()
        return job, picked

    def test_a_change_that_went_through_is_settled_not_sent_again(self, as_alice, alice, sandbox):
        job, (sent, unsent) = self.died_holding(as_alice, sandbox, 2)
        actor = audit.Actor(user=alice, request_id=job.request_id)
        for model_id in (sent, unsent):  # both attempts were written ahead, no outcome
            audit.append(
                kind=Kind.ATTEMPT,
                action=Action.MODEL_ARCHIVE,
                outcome=Outcome.UNKNOWN,
                actor=actor,
                target_id=model_id,
            )
        sandbox.state.workspace(ALICE_KEY).get(sent)["archived"] = True  # only one arrived
        sandbox.state.requests.clear()

        assert bulk_run.run(job.pk, worker="next-worker")

        posts = [r.path for r in sandbox.state.requests if r.method == "POST"]
        assert posts == [f"/v1/fine_tuning/models/{unsent}/archive"]
        assert all(sandbox.state.workspace(ALICE_KEY).get(i)["archived"] for i in (sent, unsent))
        first, second = job.items.all()
        assert first.status == second.status == BulkItem.Status.SUCCEEDED
        assert "read back" in first.message and first.tries == 2
        for model_id, verdict in ((sent, Outcome.SUCCEEDED), (unsent, Outcome.FAILED)):
            old = AuditEntry.objects.filter(kind=Kind.ATTEMPT, target_id=model_id).earliest("seq")
            assert [(o.outcome, o.actor_username) for o in old.outcomes.all()] == [
                (verdict, bulk_run.TAKEOVER_ACTOR)
            ]
        assert not audit.with_resolution(
            AuditEntry.objects.filter(kind=Kind.ATTEMPT), outcome=Outcome.UNKNOWN
        ).exists()
        assert audit_chain.verify_chain().ok

    def test_a_live_lease_is_not_taken(self, as_alice, sandbox):
        job, _ = self.died_holding(as_alice, sandbox, 1)
        job.items.update(worker="live-worker", lease_until=timezone.now() + timedelta(minutes=1))

        assert bulk_claim.claim(job.pk, "another-worker") is None
        assert bulk_run.jobs_needing_a_worker() == []

    def test_a_job_that_lost_its_task_is_queued_again(self, as_alice, sandbox, worker):
        job, picked = self.died_holding(as_alice, sandbox, 3)

        tasks.tick("a-worker")

        wait_for(job)
        assert all(sandbox.state.workspace(ALICE_KEY).get(i)["archived"] for i in picked)


class TestProgress:
    def test_rate_limited_items_say_when_they_are_retried(self, as_alice, sandbox, settings):
        settings.MISTRAL_API_MAX_RETRIES = 0
        picked = [c["id"] for c in fine_tuned_cards(sandbox)[:1]]
        prepare(as_alice, "archive", picked)
        job = BulkJob.objects.get()
        BulkJob.objects.filter(pk=job.pk).update(state=BulkJob.State.RUNNING)
        sandbox.state.faults.set(fail_status=429, fail_times=1, retry_after="30", match="POST")
        share = bulk_run._JobRun(job, job.created_by, "this-test")

        bulk_claim.record(share.run_item(*bulk_claim.claim(job.pk, "this-test")), "this-test")

        item = job.items.get()
        progress = bulk.bulk_job_progress(job)
        assert item.status == BulkItem.Status.RETRYING
        assert progress.retrying == 1 and progress.retry_at == item.retry_at
        assert f"retrying at {item.retry_at:%H:%M:%S} UTC" in item.message
        assert bulk_claim.claim(job.pk, "this-test") is None  # not before its time

    def test_a_job_no_worker_has_touched_for_a_lease_waits_for_one(self, as_alice, sandbox):
        prepare(as_alice, "archive", [fine_tuned_cards(sandbox)[0]["id"]])
        job = BulkJob.objects.get()
        BulkJob.objects.filter(pk=job.pk).update(
            state=BulkJob.State.RUNNING, started_at=timezone.now() - timedelta(minutes=5)
        )
        job.refresh_from_db()

        assert bulk.bulk_job_progress(job).waiting_for_worker
