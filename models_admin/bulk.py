"""Bulk archive, unarchive and delete: many models, one confirmation, per-item results.

A job is prepared from a selection (``bulk_job_create``: a draft listing the models
that qualify), confirmed (``bulk_job_start``), then run in a background thread with at
most BULK_CONCURRENCY upstream calls at once. Each item goes through
services.model_apply, the same services as a single action, so each is authorised and
audited on its own (attempt written ahead, outcome after): a partial failure, or a
process that dies mid-job, loses no record. The items share the job's one upstream
session (services.upstream_session): the key is decrypted once, the cards come from
one inventory read, and one remote.RateGate makes a 429 pause every call (each keeps
the client's own retry budget). Results land in BulkItem rows, which the progress
page polls.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import close_old_connections, connections, transaction
from django.db.models import Count
from django.utils import timezone

from models_admin import inventory, remote, roles, services
from models_admin.audit import Action, Actor
from models_admin.models import BulkItem, BulkJob

logger = logging.getLogger(__name__)

# A job whose runner has not been heard from for this long was interrupted (the process
# serving it stopped); its unfinished items can be retried.
STALE_AFTER = timedelta(seconds=60)
DRAFTS_KEPT = timedelta(days=1)

_NOTHING_QUALIFIES = {
    BulkJob.Action.ARCHIVE: "None of the selected models can be archived: pick fine-tuned models that are not archived yet.",
    BulkJob.Action.UNARCHIVE: "None of the selected models can be unarchived: pick archived fine-tuned models.",
    BulkJob.Action.DELETE: "None of the selected models can be deleted: only fine-tuned models can.",
}
_AUDIT_ACTION = {
    BulkJob.Action.ARCHIVE: Action.MODEL_ARCHIVE,
    BulkJob.Action.UNARCHIVE: Action.MODEL_UNARCHIVE,
    BulkJob.Action.DELETE: Action.MODEL_DELETE,
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
        actor=actor, action=_AUDIT_ACTION[BulkJob.Action(action)], target_id="bulk selection"
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
        BulkJob.objects.filter(
            created_by=actor.user,
            state=BulkJob.State.DRAFT,
            created_at__lt=timezone.now() - DRAFTS_KEPT,
        ).delete()
        job = BulkJob.objects.create(
            created_by=actor.user,
            action=action,
            ip=actor.ip,
            user_agent=actor.user_agent,
            request_id=actor.request_id,
        )
        BulkItem.objects.bulk_create(
            BulkItem(job=job, position=i, model_id=card.id, model_name=card.name or "")
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
    """Confirm a draft job and run it in the background.

    Raises PermissionDenied or ServiceError (not a draft, or no reason for a delete)."""
    services.model_authorize(
        actor=actor,
        action=_AUDIT_ACTION[BulkJob.Action(job.action)],
        target_id=f"{job.items.count()} models (bulk)",
    )
    if job.created_by_id != actor.user.pk:
        raise PermissionDenied("Only who prepared a bulk job can start it.")
    if job.action == BulkJob.Action.DELETE and not reason.strip():
        raise services.ServiceError("Give a reason for deleting these models.")
    started = BulkJob.objects.filter(pk=job.pk, state=BulkJob.State.DRAFT).update(
        state=BulkJob.State.RUNNING,
        reason=reason,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    if not started:
        raise services.ServiceError("This bulk job has already started.")
    transaction.on_commit(lambda: _launch(job.pk))


def bulk_job_retry(*, actor: Actor, job: BulkJob) -> BulkJob:
    """A new job over this job's failed (and, if it was interrupted, unfinished) items,
    started at once with the same reason.

    Raises PermissionDenied or ServiceError (nothing to retry)."""
    progress = bulk_job_progress(job)
    wanted = [BulkItem.Status.FAILED]
    if progress.interrupted:
        wanted += [BulkItem.Status.PENDING, BulkItem.Status.RUNNING]
    items = list(job.items.filter(status__in=wanted))
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
    total: int
    counts: dict[str, int]
    interrupted: bool

    @property
    def done(self) -> int:
        return self.counts.get(BulkItem.Status.SUCCEEDED, 0) + self.counts.get(
            BulkItem.Status.FAILED, 0
        )

    @property
    def failed(self) -> int:
        return self.counts.get(BulkItem.Status.FAILED, 0)

    @property
    def succeeded(self) -> int:
        return self.counts.get(BulkItem.Status.SUCCEEDED, 0)


def bulk_job_progress(job: BulkJob) -> Progress:
    counts = {row["status"]: row["n"] for row in job.items.values("status").annotate(n=Count("id"))}
    interrupted = (
        job.state == BulkJob.State.RUNNING
        and job.heartbeat_at is not None
        and timezone.now() - job.heartbeat_at > STALE_AFTER
    )
    return Progress(total=sum(counts.values()), counts=counts, interrupted=interrupted)


# --------------------------------------------------------------------------- the runner


def _launch(job_id: Any) -> None:
    threading.Thread(target=run_job, args=(job_id,), name=f"bulk-{job_id}", daemon=True).start()


def _session(user: User) -> services.UpstreamSession | None:
    """The job's one upstream session: the stored key read and decrypted once, one
    RateGate for all its calls, and the inventory read once, whose cards are the items'
    before-snapshots (no retrieve per model)."""
    try:
        session = services.upstream_session(user, gate=remote.RateGate())
    except services.ServiceError:
        return None  # each item then fails, and is audited, on its own
    with contextlib.suppress(remote.ModelsApiError):  # each item then reads its own card
        session.pin_inventory()
    return session


def _runner(
    job: BulkJob, actor: Actor, session: services.UpstreamSession | None
) -> Callable[[BulkItem], None]:
    heartbeat = _Heartbeat(job)
    action = _AUDIT_ACTION[BulkJob.Action(job.action)]

    def run_item(item: BulkItem) -> None:
        status, message = BulkItem.Status.SUCCEEDED, ""
        try:
            services.model_apply(
                actor=actor,
                action=action,
                model_id=item.model_id,
                reason=job.reason,
                session=session,
            )
        except remote.ModelNotFound as exc:
            status, message = (
                (BulkItem.Status.SUCCEEDED, "It was already gone.")
                if job.action == BulkJob.Action.DELETE
                else (BulkItem.Status.FAILED, exc.message)
            )
        except (services.ServiceError, remote.ModelsApiError) as exc:
            status, message = BulkItem.Status.FAILED, exc.message
        except PermissionDenied as exc:
            status, message = BulkItem.Status.FAILED, str(exc)
        except Exception:
            logger.exception("Bulk job %s: item %s failed unexpectedly", job.pk, item.model_id)
            status, message = BulkItem.Status.FAILED, "Unexpected error; see the server log."
            close_old_connections()  # a broken connection is replaced for the next item
        BulkItem.objects.filter(pk=item.pk).update(status=status, message=message[:1000])
        heartbeat.beat()

    return run_item


class _Heartbeat:
    """The job's "still running" timestamp, written at most once a second whatever the
    number of items (STALE_AFTER is a minute)."""

    EVERY = timedelta(seconds=1)

    def __init__(self, job: BulkJob) -> None:
        self.job_pk = job.pk
        self.last = timezone.now()
        self.lock = threading.Lock()

    def beat(self) -> None:
        now = timezone.now()
        with self.lock:
            if now - self.last < self.EVERY:
                return
            self.last = now
        BulkJob.objects.filter(pk=self.job_pk).update(heartbeat_at=now)


def run_job(job_id: Any) -> None:
    """Run a started job's pending items (in a background thread).

    BULK_CONCURRENCY worker threads take the items in turn, each on its own database
    connection for the whole job (closed when it ends). The job uses the stored key it
    started with, decrypted once; its calls share one RateGate, so a 429 pauses all."""
    try:
        job = BulkJob.objects.select_related("created_by").get(pk=job_id)
        if job.created_by is None:
            return
        user = job.created_by
        actor = Actor(
            user=user,
            ip=job.ip,
            user_agent=job.user_agent,
            request_id=job.request_id,
            role=roles.role_of(user),
        )
        items = list(job.items.filter(status=BulkItem.Status.PENDING))
        run_item = _runner(job, actor, _session(user))
        queue = iter(items)
        queue_lock = threading.Lock()

        def worker() -> None:
            try:
                while True:
                    with queue_lock:
                        item = next(queue, None)
                    if item is None:
                        return
                    run_item(item)
            finally:
                connections.close_all()  # this thread's own connection

        threads = [
            threading.Thread(target=worker, name=f"bulk-{job_id}-{n}", daemon=True)
            for n in range(min(settings.BULK_CONCURRENCY, len(items)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        BulkJob.objects.filter(pk=job.pk).update(
            state=BulkJob.State.FINISHED, finished_at=timezone.now(), heartbeat_at=timezone.now()
        )
    except Exception:
        logger.exception("Bulk job %s stopped", job_id)
    finally:
        connections.close_all()
