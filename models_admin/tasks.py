"""Background work on Django's Tasks API (the django-tasks backport) with the database
backend (django-tasks-db): tasks are rows that `manage.py run_worker` processes claim,
on any number of hosts (SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL, an exclusive
transaction on SQLite). Every task is idempotent: it may run twice, or stop anywhere.

    bulk_job_run   one worker's share of a bulk job (bulk_run.py)
    upkeep_run     one period of a scheduled upkeep task (upkeep.py)

``tick`` is each worker's scheduler step: it enqueues the upkeep that is due (once per
period across all hosts), gives a task to running jobs that lost theirs, and renews
this worker's leases.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tasks import task
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from models_admin import bulk_run, upkeep
from models_admin.models import ScheduledRun

logger = logging.getLogger(__name__)


# Someone is watching a bulk job's progress; upkeep can wait: a worker takes a queued
# bulk job before queued upkeep (one running already is finished first).
BULK_PRIORITY = 10


@task(priority=BULK_PRIORITY)
def bulk_job_run(job_id: str) -> str:
    """Work on a bulk job until it is done; a worker told to stop hands the rest back."""
    if bulk_run.run(job_id, worker=bulk_run.worker_id()):
        return "finished"
    if bulk_run.STOPPING.is_set():
        enqueue_bulk_job(job_id)
        return "handed back to the queue"
    return "left to the other workers"


@task()
def upkeep_run(name: str, period_start: str) -> str:
    return upkeep.run(name, datetime.fromisoformat(period_start))


def enqueue_bulk_job(job_id: Any) -> None:
    """Queue a bulk_job_run for the job, unless one is waiting in the queue already."""
    waiting = DBTaskResult.objects.filter(
        status=TaskResultStatus.READY,
        task_path=bulk_job_run.module_path,
        args_kwargs__args__0=str(job_id),
    )
    if not waiting.exists():
        bulk_job_run.enqueue(str(job_id))


def schedule_due(now: datetime | None = None) -> list[str]:
    """Enqueue each upkeep task whose current period has no run yet; the row and the
    task are written together, and the row's unique (name, period) lets one scheduler
    win when several try at once. Returns the names enqueued here."""
    now = now or timezone.now()
    enqueued = []
    for item in upkeep.SCHEDULE.values():
        period = item.period_start(now)
        try:
            with transaction.atomic():
                ScheduledRun.objects.create(name=item.name, period_start=period)
                upkeep_run.enqueue(item.name, period.isoformat())
        except IntegrityError:
            continue  # another scheduler got there first
        enqueued.append(item.name)
    return enqueued


def tick(worker: str) -> None:
    """One scheduler step of a worker (every WORKER_TICK_SECONDS)."""
    bulk_run.renew_leases(worker)
    for job_id in bulk_run.jobs_needing_a_worker():
        enqueue_bulk_job(job_id)
    for name in schedule_due():
        logger.info("Scheduled %s", name)
