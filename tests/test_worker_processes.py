"""Bulk jobs and upkeep across real processes: `manage.py run_worker` subprocesses (and
gunicorn) on the test database, the sandbox served in this process on 127.0.0.1.

What proves each claim is the sandbox's request log (one archive call per model), the
audit log (every attempt has exactly one outcome, the chain verifies) and the rows;
every wait is a bounded poll, never a sleep to win a race."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
from django.db import connection
from django.test import Client
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from models_admin import audit_chain, bulk, roles, tasks, upkeep
from models_admin.audit import Action, Actor, Kind, Outcome
from models_admin.models import AuditEntry, BulkItem, BulkJob, ScheduledRun
from models_admin.sandbox import SandboxServer
from tests import servers
from tests.conftest import ALICE_KEY, make_user
from tests.workers import holding, process_env, read_until, start_worker, stop, wait_until

FAST = {"BULK_LEASE_SECONDS": "2", "WORKER_TICK_SECONDS": "0.3"}


@pytest.fixture(scope="module")
def big_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(models=260) as server:
        yield server


@pytest.fixture
def sandbox(big_sandbox, settings) -> Iterator[SandboxServer]:
    big_sandbox.state.reset()
    settings.MISTRAL_API_URL = big_sandbox.url
    yield big_sandbox
    big_sandbox.state.reset()


@pytest.fixture
def alice(transactional_db, sandbox):
    return make_user("alice", roles.Role.TEAM_ADMIN, ALICE_KEY)


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """start_worker; after the test, a worker still running (the test failed before it
    stopped it) is stopped and its output printed: pytest shows it with the failure."""
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        started.append(start_worker(env, *args))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            print(f"worker {process.pid}, still running after the test:\n{stop(process)}")


def started_archive(alice, sandbox, count: int) -> tuple[BulkJob, list[str]]:
    models = sandbox.state.workspace(ALICE_KEY).models.values()
    picked = [c["id"] for c in models if c["type"] == "fine-tuned" and not c["archived"]]
    assert len(picked) >= count
    actor = Actor(user=alice, request_id="bulk-test")
    job = bulk.bulk_job_create(actor=actor, action="archive", model_ids=picked[:count])
    bulk.bulk_job_start(actor=actor, job=job)
    return job, picked[:count]


def finished(job: BulkJob) -> BulkJob:
    wait_until(
        lambda: BulkJob.objects.filter(pk=job.pk, state=BulkJob.State.FINISHED).exists(),
        what="the job to finish",
    )
    job.refresh_from_db()
    return job


def assert_each_changed_once(job: BulkJob, sandbox, picked: list[str]) -> None:
    archives = Counter(r.path for r in sandbox.state.requests if r.method == "POST")
    assert archives == Counter(f"/v1/fine_tuning/models/{i}/archive" for i in picked)
    assert all(sandbox.state.workspace(ALICE_KEY).get(i)["archived"] for i in picked)
    assert set(job.items.values_list("status", flat=True)) == {BulkItem.Status.SUCCEEDED}
    # Each model archived once on the record too. A killed worker may have written an
    # attempt whose call it never sent: the takeover settles it (not succeeded) before
    # sending again, so the log says exactly what Mistral saw.
    attempts = AuditEntry.objects.filter(kind=Kind.ATTEMPT, action=Action.MODEL_ARCHIVE)
    verdicts = [(a.target_id, a.outcomes.get()) for a in attempts]  # one outcome each
    succeeded = sorted(target for target, o in verdicts if o.outcome == Outcome.SUCCEEDED)
    settled = [(t, o.outcome, o.message) for t, o in verdicts if o.outcome != Outcome.SUCCEEDED]
    assert succeeded == sorted(picked), settled
    assert all(target in picked for target, *_ in settled)
    assert audit_chain.verify_chain().ok


class TestWorkerKilled:
    def test_another_worker_finishes_the_job_and_nothing_is_sent_twice(self, alice, sandbox, spawn):
        env = process_env(sandbox.url, **FAST)
        with holding(sandbox, "POST", passing=20) as hold:
            job, picked = started_archive(alice, sandbox, 50)
            first = spawn(env)
            hold.until_waiting(8)  # 20 archived, 8 in flight: mid-job
            wait_until(
                lambda: job.items.filter(status=BulkItem.Status.SUCCEEDED).count() == 20,
                what="the first 20 items to be recorded",
            )
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        # The 8 calls in flight reach Mistral after their worker died: unrecorded.
        wait_until(
            lambda: (
                sum(sandbox.state.workspace(ALICE_KEY).get(i)["archived"] for i in picked) == 28
            ),
            what="the calls in flight to land",
        )
        second = spawn(env)
        try:
            job = finished(job)
        finally:
            output = stop(second)

        assert_each_changed_once(job, sandbox, picked)
        taken_over = job.items.filter(tries=2)
        assert taken_over.count() >= 8  # the 8 in flight (and any it had claimed, unsent)
        assert all("read back" in item.message for item in taken_over)
        assert "running" in output


class TestGracefulStop:
    def test_sigterm_finishes_the_items_in_hand_and_hands_the_rest_back(
        self, alice, sandbox, spawn
    ):
        env = process_env(sandbox.url, **FAST)
        worker = spawn(env)
        with holding(sandbox, "POST") as hold:
            job, picked = started_archive(alice, sandbox, 20)
            hold.until_waiting(8)
            worker.send_signal(signal.SIGTERM)
            heard = read_until(worker, "shutting down gracefully")
        output = heard + worker.communicate(timeout=90)[0]  # it exits by itself

        assert worker.returncode == 0, output
        assert job.items.filter(status=BulkItem.Status.SUCCEEDED).count() == 8, (
            output,
            list(job.items.values_list("status", "message")),
        )
        assert job.items.filter(status=BulkItem.Status.PENDING).count() == 12
        queued = DBTaskResult.objects.filter(
            task_path=tasks.bulk_job_run.module_path, status=TaskResultStatus.READY
        )
        assert [t.args_kwargs["args"] for t in queued] == [[str(job.pk)]]

        second = spawn(env)
        try:
            job = finished(job)
        finally:
            stop(second)
        assert_each_changed_once(job, sandbox, picked)


@pytest.mark.postgres
class TestTwoWorkers:
    def test_they_share_a_job_of_200_and_no_item_is_done_twice(self, alice, sandbox, spawn):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (run with DATABASE_URL=postgres://...)")
        env = process_env(sandbox.url, BULK_WORKER_THREADS="6", WORKER_TICK_SECONDS="0.3")
        workers = [spawn(env), spawn(env)]
        try:
            with holding(sandbox, "POST") as hold:
                job, picked = started_archive(alice, sandbox, 200)
                hold.until_waiting(8)  # 6 threads each: only both workers reach 8
                sandbox.state.peak_in_flight = sandbox.state.in_flight
            job = finished(job)
        finally:
            for process in workers:
                stop(process)

        assert_each_changed_once(job, sandbox, picked)
        assert sandbox.state.peak_in_flight == 8  # not 12: BULK_CONCURRENCY across both
        assert len(set(job.items.values_list("worker", flat=True))) == 2


class TestScheduler:
    def test_two_schedulers_at_once_run_each_task_once_per_period(self, transactional_db, spawn):
        env = process_env("http://127.0.0.1:9")
        both = [spawn(env, "--batch"), spawn(env, "--batch")]
        outputs = [p.communicate(timeout=90)[0] for p in both]

        runs = list(ScheduledRun.objects.all())
        assert sorted({r.name for r in runs}) == sorted(upkeep.SCHEDULE), outputs
        assert all(r.finished_at is not None and r.ok for r in runs)
        queued = DBTaskResult.objects.filter(task_path=tasks.upkeep_run.module_path)
        per_period = Counter(tuple(t.args_kwargs["args"]) for t in queued)
        assert per_period == Counter((r.name, r.period_start.isoformat()) for r in runs)
        assert set(queued.values_list("status", flat=True)) == {TaskResultStatus.SUCCESSFUL}

    def test_a_period_runs_once_however_often_it_is_asked(self, transactional_db):
        assert sorted(tasks.schedule_due()) == sorted(upkeep.SCHEDULE)
        assert tasks.schedule_due() == []
        run = ScheduledRun.objects.get(name="expire_drafts")

        first = upkeep.run(run.name, run.period_start)
        again = upkeep.run(run.name, run.period_start)

        assert "deleted" in first and again == "Already ran."


class TestWebRecycle:
    def test_gunicorn_recycling_its_workers_changes_nothing(self, alice, sandbox, spawn):
        env = process_env(sandbox.url, GUNICORN_MAX_REQUESTS="25", GUNICORN_MAX_REQUESTS_JITTER="0")
        client = Client()
        client.force_login(alice)
        cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": "x" * 32}
        worker = spawn(env)
        try:
            with servers.gunicorn(env, "--config", "gunicorn.conf.py", "--workers", "2") as (
                base,
                web,
            ):
                web_client = httpx.Client(base_url=base, cookies=cookies, timeout=30)
                headers = {"X-CSRFToken": "x" * 32, "HX-Request": "true"}
                with holding(sandbox, "POST", passing=5) as hold:
                    job, picked = started_archive(alice, sandbox, 30)
                    hold.until_waiting(8)
                    for _ in range(60):  # past max_requests in both web workers
                        page = web_client.get(f"/bulk/{job.pk}/", headers=headers)
                        assert page.status_code == 200

                def polled_to_the_end() -> bool:
                    assert web_client.get(f"/bulk/{job.pk}/", headers=headers).status_code == 200
                    return BulkJob.objects.filter(pk=job.pk, state="finished").exists()

                wait_until(polled_to_the_end, what="the job to finish, polled over HTTP")
            log = web.stderr.read() if web.stderr else ""
        finally:
            stop(worker)

        job.refresh_from_db()
        assert_each_changed_once(job, sandbox, picked)
        assert "Autorestarting worker" in log
