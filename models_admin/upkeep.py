"""Scheduled upkeep: periodic tasks run by the task-queue workers.

Every worker's scheduler tick (tasks.tick) inserts one ScheduledRun row per task and
period; the row's unique (name, period) makes it run once per period across every
worker and host, and the task is enqueued in the same transaction as its row. Each
task is idempotent: a period already run is not run again, and the work itself (an
attempt already reconciled, a draft already gone) is safe to repeat.

The audit checkpoint runs here too, and the inventory sync (sync.py) every
MODEL_SYNC_MINUTES.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Min
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from models_admin import checkpoints, reconcile, sync
from models_admin.models import BulkJob, ScheduledRun

logger = logging.getLogger(__name__)

DRAFTS_KEPT = timedelta(days=1)
TASKS_KEPT = timedelta(days=14)
# An attempt younger than this may still be waiting for Mistral's answer.
RECONCILE_MIN_AGE = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Upkeep:
    name: str
    title: str
    every: Callable[[], timedelta]
    run: Callable[[], str]  # returns a one-line summary of what it did

    def period_start(self, now: datetime) -> datetime:
        seconds = self.every().total_seconds()
        return datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=UTC)


def _reconcile() -> str:
    results = reconcile.reconcile_unknown(older_than=timezone.now() - RECONCILE_MIN_AGE)
    resolved = sum(1 for r in results if r.verdict != reconcile.Outcome.UNKNOWN)
    return f"{len(results)} unknown attempt(s) checked, {resolved} resolved."


def _expire_drafts() -> str:
    drafts = BulkJob.objects.filter(
        state=BulkJob.State.DRAFT, created_at__lt=timezone.now() - DRAFTS_KEPT
    )
    deleted, _ = drafts.delete()
    return f"{deleted} row(s) of unconfirmed bulk jobs older than a day deleted."


def _prune() -> str:
    """Finished task results and scheduled runs older than TASKS_KEPT; bulk jobs stay
    (their items are each model's result)."""
    cutoff = timezone.now() - TASKS_KEPT
    results, _ = DBTaskResult.objects.finished().filter(finished_at__lt=cutoff).delete()
    runs, _ = ScheduledRun.objects.filter(period_start__lt=cutoff).delete()
    return f"{results} finished task result(s) and {runs} scheduled run(s) older than {TASKS_KEPT.days} days deleted."


SCHEDULE: dict[str, Upkeep] = {}


def register(upkeep: Upkeep) -> None:
    SCHEDULE[upkeep.name] = upkeep


register(
    Upkeep(
        "reconcile_audit",
        "Reconcile audit attempts whose outcome is unknown",
        lambda: timedelta(minutes=settings.RECONCILE_EVERY_MINUTES),
        _reconcile,
    )
)
register(
    Upkeep(
        "expire_drafts", "Delete unconfirmed bulk jobs", lambda: timedelta(hours=1), _expire_drafts
    )
)
register(
    Upkeep(
        "prune",
        f"Delete finished task results and scheduled runs older than {TASKS_KEPT.days} days",
        lambda: timedelta(days=1),
        _prune,
    )
)


def _checkpoint() -> str:
    checkpoint = checkpoints.write_checkpoint()
    return f"Checkpoint at entry #{checkpoint.seq} ({checkpoint.count} entries) written to the log."


register(
    Upkeep(
        "audit_checkpoint",
        "Write a signed audit checkpoint to the log (and AUDIT_CHECKPOINT_DIR)",
        lambda: timedelta(minutes=settings.AUDIT_CHECKPOINT_EVERY_MINUTES),
        _checkpoint,
    )
)


def _sync() -> str:
    results = sync.sync_all()
    failed = [r for r in results if r.status == "failed"]
    summary = f"{len(results)} key(s) listed, {sum(r.recorded for r in results)} outside change(s) recorded."
    if failed:
        # The run is not ok: the Background work page shows which keys and why.
        raise sync.SyncFailed(f"{summary} Failed: " + "; ".join(str(r) for r in failed))
    return summary


register(
    Upkeep(
        "sync_models",
        "Sync the model inventory: record changes made outside the dashboard",
        lambda: timedelta(minutes=settings.MODEL_SYNC_MINUTES),
        _sync,
    )
)


def run(name: str, period_start: datetime) -> str:
    """Run one period of a scheduled task, unless it has run already."""
    row = ScheduledRun.objects.get(name=name, period_start=period_start)
    if row.finished_at is not None:
        return "Already ran."
    ScheduledRun.objects.filter(pk=row.pk).update(started_at=timezone.now())
    try:
        result, ok = SCHEDULE[name].run(), True
    except Exception as exc:
        logger.exception("Scheduled task %s failed", name)
        result, ok = f"Failed: {type(exc).__name__}: {exc}", False
    ScheduledRun.objects.filter(pk=row.pk).update(
        finished_at=timezone.now(), ok=ok, result=result[:2000]
    )
    return result


@dataclass(frozen=True, slots=True)
class TaskStatus:
    upkeep: Upkeep
    last: ScheduledRun | None  # the last finished run
    next_run: datetime


@dataclass(frozen=True, slots=True)
class QueueStatus:
    ready: int
    running: int
    oldest_ready: datetime | None


def status(now: datetime | None = None) -> tuple[list[TaskStatus], QueueStatus]:
    """Each scheduled task's last run and next run, and the queue's depth."""
    now = now or timezone.now()
    tasks = []
    for upkeep in SCHEDULE.values():
        runs = ScheduledRun.objects.filter(name=upkeep.name)
        last = runs.filter(finished_at__isnull=False).first()
        current = upkeep.period_start(now)
        due = runs.filter(period_start=current).exists()
        tasks.append(TaskStatus(upkeep, last, current + upkeep.every() if due else now))
    ready = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
    queue = QueueStatus(
        ready=ready.count(),
        running=DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).count(),
        oldest_ready=ready.aggregate(oldest=Min("enqueued_at"))["oldest"],
    )
    return tasks, queue
