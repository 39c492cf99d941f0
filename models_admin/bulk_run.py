"""Running a bulk job's items, in task-queue workers (tasks.bulk_job_run), never in a
web process.

Items are claimed one at a time with a lease (BULK_LEASE_SECONDS). A claim locks the
job's row, so the claims of every worker sharing a job are serialised, and none is
granted while BULK_CONCURRENCY items of the job hold a live lease: the bound holds
across workers. Each worker gives a job up to BULK_WORKER_THREADS threads sharing one
upstream session (the key decrypted once, one inventory read) and one bulk_pace.Pace:
the session's RateGate, so a 429 pauses every thread of the worker, and the worker's
concurrency for the job, which halves on a 429 and grows back after successes (AIMD).

A live worker renews its leases (``renew_leases``, from its scheduler tick), so a lease
expires only when its worker is gone (SIGKILL, recycle, host lost). The item is then
taken over: what the dead worker may have sent is settled first, by reading the model
back (reconcile.settle gives each of its unresolved audit attempts its one outcome),
and the change is sent again only if the model shows it did not happen. A rate-limited
item waits in ``retrying`` until its ``retry_at``; a 429 fails it only once
BULK_ITEM_DEADLINE_SECONDS have passed since it was first tried. On SIGTERM
(``STOPPING``) threads finish their item and claim no more; tasks.py hands the rest
of the job to the queue. Claims are bulk_claim.py's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import close_old_connections, connections, transaction
from django.db.models import Min, QuerySet
from django.utils import timezone
from django.utils.crypto import get_random_string

from models_admin import audit, bulk_pace, reconcile, remote, roles, services
from models_admin.audit import Action, Actor
from models_admin.bulk_claim import Result, claim, claimable, lease, record
from models_admin.models import AuditEntry, BulkItem, BulkJob

logger = logging.getLogger(__name__)

AUDIT_ACTION = {
    BulkJob.Action.ARCHIVE: Action.MODEL_ARCHIVE,
    BulkJob.Action.UNARCHIVE: Action.MODEL_UNARCHIVE,
    BulkJob.Action.DELETE: Action.MODEL_DELETE,
}
FINAL = (BulkItem.Status.SUCCEEDED, BulkItem.Status.FAILED)
TAKEOVER_ACTOR = "system:bulk_takeover"

# Set by the worker on SIGTERM: finish the item in hand, claim no more.
STOPPING = threading.Event()
# The items this process's runner threads hold (their leases are renewed).
IN_HAND: set[int] = set()


@cache
def worker_id() -> str:
    """This process's name in claims: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{get_random_string(6)}"


def renew_leases(worker: str) -> int:
    """Extend the leases of the items this process's threads are working on (and mark
    their jobs as worked on). An item whose thread failed is no longer renewed, so it
    is taken over once its lease expires, as if its worker had died."""
    now = timezone.now()
    held = BulkItem.objects.filter(
        pk__in=list(IN_HAND), worker=worker, status=BulkItem.Status.RUNNING
    )
    renewed = held.update(lease_until=now + lease())
    if renewed:
        jobs = held.values_list("job_id", flat=True)
        BulkJob.objects.filter(pk__in=list(jobs)).update(heartbeat_at=now)
    return renewed


def _next_wait(job_id: Any) -> float | None:
    """Seconds to wait before claiming again, or None when every item is final."""
    now = timezone.now()
    unfinished = BulkItem.objects.filter(job_id=job_id).exclude(status__in=FINAL)
    if not unfinished.exists():
        return None
    if unfinished.filter(claimable(now)).exists():
        return 0.1  # held back by the job's concurrency bound
    soonest = unfinished.aggregate(lease=Min("lease_until"), retry=Min("retry_at"))
    due = min(t for t in (soonest["lease"], soonest["retry"], now + timedelta(seconds=1)) if t)
    return max(0.05, (due - now).total_seconds())


def finish_if_done(job_id: Any) -> bool:
    """Mark the job finished once every item is; True when it is."""
    if BulkItem.objects.filter(job_id=job_id).exclude(status__in=FINAL).exists():
        return False
    now = timezone.now()
    BulkJob.objects.filter(pk=job_id, state=BulkJob.State.RUNNING).update(
        state=BulkJob.State.FINISHED, finished_at=now, heartbeat_at=now
    )
    return True


def _session(job: BulkJob, user: User, gate: remote.RateGate) -> services.UpstreamSession | None:
    """This worker's one session for the job: the stored key read and decrypted once,
    one RateGate (``gate``) for all its calls, and the items' cards pinned (no retrieve per model):
    those the job was prepared with while they are as fresh as a cached inventory may
    be (MODEL_LIST_CACHE_SECONDS), else the inventory, read once."""
    try:
        session = services.upstream_session(user, gate=gate)
    except services.ServiceError:
        return None  # each item then fails, and is audited, on its own
    fresh = timezone.now() - job.created_at <= timedelta(seconds=settings.MODEL_LIST_CACHE_SECONDS)
    snapshots = list(job.items.values_list("model_id", "card")) if fresh else []
    if snapshots and all(card for _, card in snapshots):
        # UpstreamSession has no public way yet to pin given cards (services owns it).
        with contextlib.suppress(remote.ModelsApiError):  # else read the inventory
            session._pinned = {
                model_id: remote.ModelCard.from_json(card) for model_id, card in snapshots
            }
            return session
    with contextlib.suppress(remote.ModelsApiError):  # each item then reads its own card
        session.pin_inventory()
    return session


class _JobRun:
    """One worker's share of one job: its threads claim and run items until none is left."""

    def __init__(self, job: BulkJob, user: User, worker: str) -> None:
        self.job = job
        self.worker = worker
        self.action = AUDIT_ACTION[BulkJob.Action(job.action)]
        self.actor = Actor(
            user=user,
            ip=job.ip,
            user_agent=job.user_agent,
            request_id=job.request_id,
            role=roles.role_of(user),
        )
        self.pace = bulk_pace.Pace(settings.BULK_CONCURRENCY)
        self.session = _session(job, user, self.pace)
        self.finished = threading.Event()

    def _slot(self, done: Result | None) -> Result | None:
        """Wait for a slot under the job's concurrency in this worker (the item just
        done is recorded meanwhile, if that takes a while); returns what is left to record."""
        if self.pace.acquire(timeout=0):
            return done
        if done is not None:
            with transaction.atomic():
                record(done, self.worker)
            IN_HAND.discard(done.item.pk)
        while not (self.pace.acquire(timeout=0.5) or STOPPING.is_set() or self.finished.is_set()):
            pass
        return None

    def loop(self) -> None:
        done: Result | None = None
        try:
            while not STOPPING.is_set():
                done = self._slot(done)
                if STOPPING.is_set() or self.finished.is_set():
                    break  # (a slot taken meanwhile is left: this share is over)
                try:
                    claimed = claim(self.job.pk, self.worker, done)
                    if done is not None:
                        IN_HAND.discard(done.item.pk)
                    done = None
                    if claimed is not None:
                        IN_HAND.add(claimed[0].pk)
                        done = self.run_item(*claimed)
                        continue
                finally:
                    self.pace.release(
                        succeeded=done is not None and done.status == BulkItem.Status.SUCCEEDED
                    )
                wait = _next_wait(self.job.pk)
                if wait is None:
                    finish_if_done(self.job.pk)
                    self.finished.set()  # wakes this job's other threads at once
                    return
                self.finished.wait(wait)
            if done is not None:
                record(done, self.worker)
        except Exception:
            logger.exception("Bulk job %s: a runner thread stopped", self.job.pk)
        finally:
            if done is not None:
                IN_HAND.discard(done.item.pk)
            connections.close_all()  # this thread's own connection

    def run_item(self, item: BulkItem, taken_over: bool) -> Result:
        """Run one claimed item; its result is recorded with the next claim."""
        if taken_over and (settled := self._settled(item)) is not None:
            return settled
        status, message, retry_at = BulkItem.Status.SUCCEEDED, "", None
        try:
            services.model_apply(
                actor=self.actor,
                action=self.action,
                model_id=item.model_id,
                reason=self.job.reason,
                session=self.session,
            )
        except remote.ModelNotFound as exc:
            status, message = (
                (BulkItem.Status.SUCCEEDED, "It was already gone.")
                if self.job.action == BulkJob.Action.DELETE
                else (BulkItem.Status.FAILED, exc.message)
            )
        except remote.ApiRateLimited as exc:
            return self._rate_limited(item, exc)
        except (services.ServiceError, remote.ModelsApiError) as exc:
            status, message = BulkItem.Status.FAILED, exc.message
        except PermissionDenied as exc:
            status, message = BulkItem.Status.FAILED, str(exc)
        except Exception:
            logger.exception("Bulk job %s: item %s failed unexpectedly", self.job.pk, item.model_id)
            status, message = BulkItem.Status.FAILED, "Unexpected error; see the server log."
            close_old_connections()  # a broken connection is replaced for the next item
        return Result(item, status, message, retry_at)

    def _rate_limited(self, item: BulkItem, exc: remote.ApiRateLimited) -> Result:
        """Mistral kept saying "too many requests": the item waits and is tried again,
        until its deadline (BULK_ITEM_DEADLINE_SECONDS after its first try)."""
        now = timezone.now()
        retry_at = now + timedelta(seconds=max(1.0, exc.retry_after or 5.0))
        first = self._attempts(item).aggregate(at=Min("created_at"))["at"] or now
        deadline = first + timedelta(seconds=settings.BULK_ITEM_DEADLINE_SECONDS)
        if now >= deadline:
            message = (
                "Mistral kept answering 429 (too many requests) until this item's deadline, "
                f"{settings.BULK_ITEM_DEADLINE_SECONDS / 60:g} minutes after its first try: "
                "not done. Retry it later."
            )
            return Result(item, BulkItem.Status.FAILED, message)
        retry_at = min(retry_at, deadline)
        message = f"Rate-limited by Mistral: retrying at {retry_at:%H:%M:%S} UTC."
        return Result(item, BulkItem.Status.RETRYING, message, retry_at)

    def _settled(self, item: BulkItem) -> Result | None:
        """The item's worker died holding it. Read the model back: its unresolved
        attempts get their outcome, and if the change is there, the item is done
        without sending it again. None when it must still be sent."""
        if self.session is None:
            return None  # the item fails on the missing key, before sending anything
        try:
            card = self.session.read_back(item.model_id)
        except remote.ModelsApiError as exc:
            message = f"Its worker stopped mid-call and Mistral could not be asked what happened ({exc.message}); see the audit log."
            return Result(item, BulkItem.Status.FAILED, message)
        for attempt in self._unresolved_attempts(item):
            reconcile.settle(
                attempt, card, credential=self.session.credential, system=TAKEOVER_ACTOR
            )
        if self.job.action == BulkJob.Action.DELETE:
            done = card is None
        else:
            archived = self.job.action == BulkJob.Action.ARCHIVE
            done = card is not None and getattr(card, "archived", None) is archived
        if not done:
            return None
        message = "Done before its worker stopped (read back from Mistral)."
        return Result(item, BulkItem.Status.SUCCEEDED, message)

    def _attempts(self, item: BulkItem) -> QuerySet[AuditEntry]:
        """The item's audited attempts in this job."""
        entries = AuditEntry.objects.filter(
            kind=AuditEntry.Kind.ATTEMPT,
            action=self.action,
            target_id=item.model_id,
            actor=self.actor.user,
            created_at__gte=self.job.started_at or self.job.created_at,
        )
        if self.job.request_id:
            entries = entries.filter(request_id=self.job.request_id)
        return entries

    def _unresolved_attempts(self, item: BulkItem) -> list[AuditEntry]:
        entries = self._attempts(item)
        return list(audit.with_resolution(entries, outcome=AuditEntry.Outcome.UNKNOWN))


def _fail_unfinished(job_id: Any, message: str) -> None:
    unfinished = BulkItem.objects.filter(job_id=job_id).exclude(status__in=FINAL)
    unfinished.update(status=BulkItem.Status.FAILED, message=message, lease_until=None)


def run(job_id: Any, *, worker: str) -> bool:
    """Work on a started job in this worker until no item is left to claim (or the
    worker is stopping). True when the job has finished."""
    job = BulkJob.objects.select_related("created_by").filter(pk=job_id).first()
    if job is None or job.state != BulkJob.State.RUNNING:
        return True
    if job.created_by is None:
        _fail_unfinished(job.pk, "The account that started this job no longer exists.")
        return finish_if_done(job.pk)
    share = _JobRun(job, job.created_by, worker)
    unfinished = BulkItem.objects.filter(job_id=job.pk).exclude(status__in=FINAL).count()
    count = max(1, min(settings.BULK_WORKER_THREADS, settings.BULK_CONCURRENCY, unfinished))
    threads = [
        threading.Thread(target=share.loop, name=f"bulk-{job.pk}-{n}", daemon=True)
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return finish_if_done(job.pk)


def jobs_needing_a_worker() -> list[Any]:
    """Running jobs with an item any worker could claim now (the queue may have lost
    their task with a dead worker, or one worker is sharing them out)."""
    now = timezone.now()
    claimable_items = BulkItem.objects.filter(claimable(now))
    ids = claimable_items.filter(job__state=BulkJob.State.RUNNING).values_list("job_id", flat=True)
    return list(ids.order_by().distinct())
