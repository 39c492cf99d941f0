"""Scheduled upkeep (``upkeep.py``): the daily prune of old task results, a failing
task recorded as failed, and bulk jobs queued once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from models_admin import tasks, upkeep
from models_admin.models import ScheduledRun


def run_now(name: str) -> ScheduledRun:
    """Schedule what is due and run this task's period, as a worker would."""
    tasks.schedule_due()
    row = ScheduledRun.objects.get(name=name)
    upkeep.run(row.name, row.period_start)
    row.refresh_from_db()
    return row


def finished_task(days_ago: int) -> DBTaskResult:
    result = tasks.upkeep_run.enqueue("expire_drafts", timezone.now().isoformat())
    DBTaskResult.objects.filter(id=result.id).update(
        status=TaskResultStatus.SUCCESSFUL, finished_at=timezone.now() - timedelta(days=days_ago)
    )
    return DBTaskResult.objects.get(id=result.id)


class TestPrune:
    def test_it_deletes_what_finished_over_two_weeks_ago_and_keeps_the_rest(self, db):
        old, recent = finished_task(days_ago=15), finished_task(days_ago=13)
        old_run = ScheduledRun.objects.create(
            name="expire_drafts", period_start=timezone.now() - timedelta(days=20)
        )

        row = run_now("prune")

        assert row.ok is True
        assert row.result == (
            "1 finished task result(s) and 1 scheduled run(s) older than 14 days deleted."
        )
        assert not DBTaskResult.objects.filter(id=old.id).exists()
        assert DBTaskResult.objects.filter(id=recent.id).exists()
        assert not ScheduledRun.objects.filter(pk=old_run.pk).exists()
        # what is waiting in the queue is never pruned, however old
        assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).count() == len(
            upkeep.SCHEDULE
        )

    def test_it_is_scheduled_daily(self):
        assert upkeep.SCHEDULE["prune"].every() == timedelta(days=1)


class TestFailingTask:
    def test_a_failure_is_recorded_on_its_run_and_logged(self, db, tmp_path, settings, caplog):
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        settings.AUDIT_CHECKPOINT_DIR = str(blocker / "checkpoints")

        row = run_now("audit_checkpoint")

        assert row.ok is False
        assert row.finished_at is not None
        assert row.result.startswith("Failed: NotADirectoryError:")
        assert "Scheduled task audit_checkpoint failed" in caplog.text

    def test_a_working_checkpoint_says_where_the_log_ends(self, alice, tmp_path, settings):
        settings.AUDIT_CHECKPOINT_DIR = str(tmp_path)

        row = run_now("audit_checkpoint")

        assert row.ok is True
        assert row.result == "Checkpoint at entry #0 (0 entries) written to the log."
        assert len(list(tmp_path.glob("audit-checkpoint-0-*.json"))) == 1


class TestEnqueueBulkJob:
    @pytest.mark.parametrize("times", [1, 3])
    def test_a_job_waits_in_the_queue_once(self, db, times):
        job_id = uuid.uuid4()

        for _ in range(times):
            tasks.enqueue_bulk_job(job_id)

        waiting = DBTaskResult.objects.filter(task_path=tasks.bulk_job_run.module_path)
        assert [t.args_kwargs["args"] for t in waiting] == [[str(job_id)]]
