"""Bulk archive, unarchive and delete: many models, one confirmation, per-item results.

A job is prepared from a selection (``bulk_job_create``: a draft listing the models
that qualify), confirmed (``bulk_job_start``: the job is queued as a task), then run by
task-queue workers (bulk_run.py), never in a web process: at most BULK_CONCURRENCY
upstream calls at once across every worker sharing it. Each item goes through
services.model_apply, the same services as a single action, so each is authorised and
audited on its own (attempt written ahead, outcome after). Items are claimed with a
lease, so the item of a worker that dies is taken over by another, which first reads
the model back. Results land in BulkItem rows, which the progress page polls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone

from models_admin import audit, bulk_run, inventory, remote, services, storable, tasks
from models_admin.audit import Actor
from models_admin.models import BulkItem, BulkJob

_NOTHING_QUALIFIES = {
    BulkJob.Action.ARCHIVE: "None of the selected models can be archived: pick fine-tuned models that are not archived yet.",
    BulkJob.Action.UNARCHIVE: "None of the selected models can be unarchived: pick archived fine-tuned models.",
    BulkJob.Action.DELETE: "None of the selected models can be deleted: only fine-tuned models can.",
}


def _qualifies(action: str, card: remote.ModelCard) -> bool:
    if not isinstance(card, remote.FineTunedModelCard):
        return False
    if action == BulkJob.Action.ARCHIVE:
        return not card.archived
    if action == BulkJob.Action.UNARCHIVE:
        return card.archived
    return True


def bulk_job_create(
    *,
    actor: Actor,
    action: str,
    model_ids: Iterable[str] = (),
    query: inventory.ModelQuery | None = None,
) -> BulkJob:
    """A draft job over the selected models (``model_ids``) or over every model matching
    ``query``; only those the action applies to are kept (fine-tuned, and not already
    in the wanted archive state).

    Raises PermissionDenied, MissingApiKey, UndecryptableApiKey, remote.ModelsApiError,
    or ServiceError when no selected model qualifies."""
    services.model_authorize(
        actor=actor,
        action=bulk_run.AUDIT_ACTION[BulkJob.Action(action)],
        target_id="bulk selection",
    )
    inv = services.models_inventory(actor=actor)
    if query is not None:
        rows = inventory.matching(inv, query)
    else:
        by_id = {row.id: row for row in inv.rows}
        rows = [by_id[model_id] for model_id in dict.fromkeys(model_ids) if model_id in by_id]
    cards = [row.card for row in rows if _qualifies(action, row.card)]
    if not cards:
        raise services.ServiceError(_NOTHING_QUALIFIES[BulkJob.Action(action)])
    with transaction.atomic():
        job = BulkJob.objects.create(
            created_by=actor.user,
            action=action,
            ip=actor.ip,
            user_agent=actor.user_agent,
            request_id=actor.request_id,
        )
        BulkItem.objects.bulk_create(
            BulkItem(
                job=job,
                position=i,
                model_id=card.id,
                model_name=card.name or "",
                # Stored as the database can take it (no NUL: see storable).
                card=storable.json_value(audit.card_snapshot(card)),
            )
            for i, card in enumerate(cards)
        )
    return job


def bulk_job_get(*, actor: Actor, job_id: Any) -> BulkJob:
    """The job, if the actor may see it (its creator, or a team admin).

    Raises BulkJob.DoesNotExist or PermissionDenied."""
    job = BulkJob.objects.get(pk=job_id)
    if job.created_by_id != actor.user.pk and not actor.user.has_perm("models_admin.manage_team"):
        raise PermissionDenied("This bulk job is someone else's.")
    return job


def bulk_job_start(*, actor: Actor, job: BulkJob, reason: str = "") -> None:
    """Confirm a draft job and queue it for the task workers.

    Raises PermissionDenied or ServiceError (not a draft, or no reason for a delete)."""
    services.model_authorize(
        actor=actor,
        action=bulk_run.AUDIT_ACTION[BulkJob.Action(job.action)],
        target_id=f"{job.items.count()} models (bulk)",
    )
    if job.created_by_id != actor.user.pk:
        raise PermissionDenied("Only who prepared a bulk job can start it.")
    if job.action == BulkJob.Action.DELETE and not reason.strip():
        raise services.ServiceError("Give a reason for deleting these models.")
    with transaction.atomic():
        started = BulkJob.objects.filter(pk=job.pk, state=BulkJob.State.DRAFT).update(
            state=BulkJob.State.RUNNING, reason=reason, started_at=timezone.now()
        )
        if not started:
            raise services.ServiceError("This bulk job has already started.")
        tasks.enqueue_bulk_job(job.pk)


def bulk_job_retry(*, actor: Actor, job: BulkJob) -> BulkJob:
    """A new job over this job's failed items, started at once with the same reason.

    Raises PermissionDenied or ServiceError (nothing to retry)."""
    items = list(job.items.filter(status=BulkItem.Status.FAILED))
    if not items:
        raise services.ServiceError("Nothing to retry: no model failed.")
    with transaction.atomic():
        retry = BulkJob.objects.create(
            created_by=actor.user,
            action=job.action,
            ip=actor.ip,
            user_agent=actor.user_agent,
            request_id=actor.request_id,
        )
        BulkItem.objects.bulk_create(
            BulkItem(job=retry, position=i, model_id=item.model_id, model_name=item.model_name)
            for i, item in enumerate(items)
        )
        bulk_job_start(actor=actor, job=retry, reason=job.reason)
    return retry


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a job stands, from its items: ``counts`` by status, the earliest
    ``retry_at`` of rate-limited items, and whether it waits for a worker (none has
    worked on it for a lease's length: none is running, or all are busy)."""

    total: int
    counts: dict[str, int]
    retry_at: datetime | None = None
    waiting_for_worker: bool = False

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def failed(self) -> int:
        return self.counts.get(BulkItem.Status.FAILED, 0)

    @property
    def succeeded(self) -> int:
        return self.counts.get(BulkItem.Status.SUCCEEDED, 0)

    @property
    def pending(self) -> int:
        return self.counts.get(BulkItem.Status.PENDING, 0)

    @property
    def running(self) -> int:
        return self.counts.get(BulkItem.Status.RUNNING, 0)

    @property
    def retrying(self) -> int:
        return self.counts.get(BulkItem.Status.RETRYING, 0)


def bulk_job_progress(job: BulkJob) -> Progress:
    counts = {
        row["status"]: row["n"]
        for row in job.items.order_by().values("status").annotate(n=Count("id"))
    }
    retrying = job.items.filter(status=BulkItem.Status.RETRYING)
    retry_at = retrying.aggregate(at=Min("retry_at"))["at"] if counts.get("retrying") else None
    total = sum(counts.values())
    unfinished = total - counts.get(BulkItem.Status.SUCCEEDED, 0) - counts.get("failed", 0)
    last_seen = job.heartbeat_at or job.started_at
    quiet = last_seen is None or timezone.now() - last_seen > timedelta(
        seconds=settings.BULK_LEASE_SECONDS
    )
    claimable = unfinished - counts.get(BulkItem.Status.RETRYING, 0)  # not waiting on a 429
    waiting = job.state == BulkJob.State.RUNNING and claimable > 0 and quiet
    return Progress(total, counts, retry_at, waiting)
