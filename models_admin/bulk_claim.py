"""Claiming a bulk job's items (bulk_run's runner threads, in any number of workers).

An item is claimed with a lease (BULK_LEASE_SECONDS) and only while fewer than
BULK_CONCURRENCY items of its job hold a live one. The job's row is locked for the
count (FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transactions serialise writers
anyway), so the claims of every worker sharing a job count leases one at a time. The
result of the item just done is recorded in the same transaction.

Plain SQL: a claim runs once per item, on the path the bulk benchmark times. On
PostgreSQL, outside a caller's transaction, the whole claim is one round trip
(round_trips.py): the job's lock is held while the database runs it, not across the
network.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Q
from django.utils import timezone

from models_admin import round_trips, storable
from models_admin.models import BulkItem, BulkJob

logger = logging.getLogger(__name__)

S = BulkItem.Status
_ITEMS, _JOBS = (connection.ops.quote_name(m._meta.db_table) for m in (BulkItem, BulkJob))


def lease() -> timedelta:
    return timedelta(seconds=settings.BULK_LEASE_SECONDS)


def claimable(now: datetime) -> Q:
    """Items a worker may claim: waiting, due for a retry, or held by a dead worker
    (what the claim's SQL selects)."""
    return (
        Q(status=S.PENDING)
        | Q(status=S.RETRYING, retry_at__lte=now)
        | Q(status=S.RUNNING, lease_until__lte=now)
    )


@dataclass(frozen=True, slots=True)
class Result:
    """What running an item came to, recorded with the worker's next claim."""

    item: BulkItem
    status: str
    message: str = ""
    retry_at: datetime | None = None


_RECORD = (
    f"UPDATE {_ITEMS} SET status = %s, message = %s, lease_until = NULL, retry_at = %s "  # noqa: S608
    "WHERE id = %s AND worker = %s AND status = %s"
)
_LOCK_JOB = f"SELECT 1 FROM {_JOBS} WHERE id = %s AND state = %s"  # noqa: S608
_LEASED = f"SELECT COUNT(*) FROM {_ITEMS} WHERE job_id = %s AND status = %s AND lease_until > %s"  # noqa: S608
_CLAIMABLE = (
    "job_id = %s AND (status = %s OR (status = %s AND retry_at <= %s) "
    "OR (status = %s AND lease_until <= %s))"
)
_NEXT = f"SELECT id, status, position, model_id, model_name, tries FROM {_ITEMS} WHERE {_CLAIMABLE} ORDER BY position LIMIT 1"  # noqa: S608
_TAKE = f"UPDATE {_ITEMS} SET status = %s, worker = %s, lease_until = %s, tries = tries + 1 WHERE id = %s"  # noqa: S608
# PostgreSQL's claim in one statement, run once the job's row is locked: the next
# claimable item, if the job still runs and has fewer than the bound leased, with its
# status before (RUNNING: a takeover).
_CLAIM = f"""WITH next AS (
    SELECT id, status FROM {_ITEMS} WHERE {_CLAIMABLE}
    AND EXISTS (SELECT 1 FROM {_JOBS} WHERE id = %s AND state = %s)
    AND ({_LEASED}) < %s
    ORDER BY position LIMIT 1
)
UPDATE {_ITEMS} AS item SET status = %s, worker = %s, lease_until = %s, tries = item.tries + 1
FROM next WHERE item.id = next.id
RETURNING item.id, next.status, item.position, item.model_id, item.model_name, item.tries - 1"""  # noqa: S608


def _record_params(result: Result, worker: str) -> list[Any]:
    at = BulkItem._meta.get_field("retry_at").get_db_prep_value
    message = storable.text(result.message, 1000)
    return [
        result.status,
        message,
        at(result.retry_at, connection),
        result.item.pk,
        worker,
        S.RUNNING,
    ]


def _lost(result: Result, held: int) -> None:
    if not held:
        logger.warning(
            "Bulk item %s: its lease was lost before its result was saved", result.item.pk
        )


def record(result: Result, worker: str) -> None:
    """Save an item's result, if this worker still holds it."""
    with connection.cursor() as cursor:
        cursor.execute(_RECORD, _record_params(result, worker))
        _lost(result, cursor.rowcount)


@dataclass(frozen=True, slots=True)
class _Claim:
    """One claim's values, as the database takes them."""

    job: Any
    worker: str
    done: Result | None
    now: Any
    until: Any

    @property
    def claimable(self) -> list[Any]:  # the parameters of _CLAIMABLE
        return [self.job, S.PENDING, S.RETRYING, self.now, S.RUNNING, self.now]


def claim(job_id: Any, worker: str, done: Result | None = None) -> tuple[BulkItem, bool] | None:
    """Record the item just done (``done``), then lease the job's next claimable item,
    unless BULK_CONCURRENCY items of it are leased already; one transaction for both.
    Also says whether the item is a takeover (its lease had expired)."""
    now = timezone.now()
    at = BulkItem._meta.get_field("lease_until").get_db_prep_value
    job = BulkJob._meta.pk.get_db_prep_value(job_id, connection)
    ask = _Claim(job, worker, done, at(now, connection), at(now + lease(), connection))
    if round_trips.available():
        with round_trips.explicit_transaction() as cursor:
            row = _claim_in_one_trip(cursor, ask)
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            row = _claim_step_by_step(cursor, ask)
    if row is None:
        return None
    pk, status, position, model_id, model_name, tries = row
    item = BulkItem(
        pk=pk,
        job_id=job_id,
        position=position,
        model_id=model_id,
        model_name=model_name,
        status=S.RUNNING,
        worker=worker,
        lease_until=now + lease(),
        tries=tries + 1,
    )
    return item, status == S.RUNNING


def _claim_in_one_trip(cursor: CursorWrapper, ask: _Claim) -> tuple[Any, ...] | None:
    """PostgreSQL: BEGIN, the record, the job's lock, the claim and COMMIT, sent as one
    query. Each statement reads what the ones before it committed (READ COMMITTED), so
    the count runs after the lock is granted."""
    sql, params = ["BEGIN"], []
    if ask.done is not None:
        sql.append(_RECORD)
        params += _record_params(ask.done, ask.worker)
    sql += [f"{_LOCK_JOB} FOR UPDATE", _CLAIM, "COMMIT"]
    params += [ask.job, "running", *ask.claimable, ask.job, "running", ask.job, S.RUNNING]
    params += [ask.now, settings.BULK_CONCURRENCY, S.RUNNING, ask.worker, ask.until]
    cursor.execute("; ".join(sql), params)
    cursor.nextset()  # past BEGIN
    if ask.done is not None:
        _lost(ask.done, cursor.rowcount)
        cursor.nextset()
    cursor.nextset()  # past the lock
    row: tuple[Any, ...] | None = cursor.fetchone()
    return row


def _claim_step_by_step(cursor: CursorWrapper, ask: _Claim) -> tuple[Any, ...] | None:
    """The same claim, a statement at a time, inside ``atomic``."""
    if ask.done is not None:
        record(ask.done, ask.worker)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    cursor.execute(_LOCK_JOB + lock, [ask.job, "running"])
    if cursor.fetchone() is None:
        return None
    cursor.execute(_LEASED, [ask.job, S.RUNNING, ask.now])
    if cursor.fetchone()[0] >= settings.BULK_CONCURRENCY:
        return None
    cursor.execute(_NEXT, ask.claimable)
    row: tuple[Any, ...] | None = cursor.fetchone()
    if row is not None:
        cursor.execute(_TAKE, [S.RUNNING, ask.worker, ask.until, row[0]])
    return row
