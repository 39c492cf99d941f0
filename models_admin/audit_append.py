"""Appending to the audit chain: each append (or batch) is one transaction that locks
the chain's head row, links the entries to it, inserts them and moves the head.

The head's lock serialises every append of every process, so how long it is held
bounds how many changes per second the whole dashboard can record (a bulk job appends
two entries per model from eight threads). Through Django's ORM an append is five round
trips to the database (BEGIN, lock, INSERT, UPDATE, COMMIT), three of them with the
lock held. On PostgreSQL, outside a caller's transaction, ``insert`` makes it two:
``BEGIN; SELECT ... FOR UPDATE``, then ``INSERT ...; UPDATE ...; COMMIT`` (psycopg's
client-side binding sends several statements as one), so the lock is held for one
round trip and the hashing in between. Inside a caller's transaction (whose commit is
the caller's), and on SQLite (no round trips; IMMEDIATE transactions serialise
writers anyway), the ORM path is used.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone

from models_admin import round_trips
from models_admin.audit_hash import GENESIS, entry_hash, hash_values
from models_admin.models import AuditChainHead, AuditEntry


def lock_head() -> AuditChainHead:
    """The chain's head row, locked until the caller's transaction ends: no entry is
    appended meanwhile (appends, the inventory sync's comparison)."""
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        # A fresh (or flushed) database: continue from whatever the log holds.
        last = AuditEntry.objects.order_by("-seq").values("seq", "hash").first()
        AuditChainHead.objects.get_or_create(
            pk=1,
            defaults={"seq": last["seq"] if last else 0, "hash": last["hash"] if last else GENESIS},
        )
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


def _link(entry: AuditEntry, seq: int, prev_hash: str) -> None:
    """Make ``entry`` the chain's link after (seq - 1, prev_hash)."""
    entry.seq, entry.prev_hash, entry.created_at = seq, prev_hash, timezone.now()
    entry.hash = entry_hash(hash_values(entry, entry.attempt.seq if entry.attempt else None))


def insert(entry: AuditEntry) -> AuditEntry:
    """Link the entry to the chain head, hash it and save it, in one transaction."""
    if round_trips.available():
        return _insert_in_two_trips(entry)
    with transaction.atomic():
        head = lock_head()
        _link(entry, head.seq + 1, head.hash)
        entry.save()
        head.seq, head.hash = entry.seq, entry.hash
        head.save(update_fields=["seq", "hash"])
    return entry


def insert_many(entries: list[AuditEntry], head: AuditChainHead | None = None) -> list[AuditEntry]:
    """Link and insert self-contained entries (no ``attempt``) in one transaction: the
    head is locked once and the rows are inserted in bulk. ``head``: the head row as
    ``lock_head`` gave it to the caller's transaction, still locked (not read again)."""
    with transaction.atomic():
        if head is None:
            head = lock_head()
        now = timezone.now()
        seq, prev = head.seq, head.hash
        for entry in entries:
            seq += 1
            entry.seq, entry.prev_hash, entry.created_at = seq, prev, now
            entry.hash = prev = entry_hash(hash_values(entry, None))
        AuditEntry.objects.bulk_create(entries, batch_size=500)
        head.seq, head.hash = seq, prev
        head.save(update_fields=["seq", "hash"])
    return entries


_FIELDS = [f for f in AuditEntry._meta.concrete_fields if not f.primary_key]
_HEAD = connection.ops.quote_name(AuditChainHead._meta.db_table)


def _insert_in_two_trips(entry: AuditEntry) -> AuditEntry:
    """``insert`` on PostgreSQL outside a transaction: two round trips, the lock held
    for one. An error (a DataError, which the caller retries with every string
    escaped, included) rolls it back before it is raised."""
    with round_trips.explicit_transaction() as cursor:
        cursor.execute(f"BEGIN; SELECT seq, hash FROM {_HEAD} WHERE id = 1 FOR UPDATE")  # noqa: S608
        cursor.nextset()
        row = cursor.fetchone()
        if row is not None:
            _link(entry, row[0] + 1, row[1])
            query = InsertQuery(AuditEntry)
            query.insert_values(_FIELDS, [entry])
            compiler = query.get_compiler(connection=connection)
            compiler.returning_fields = [AuditEntry._meta.pk]
            [(sql, params)] = compiler.as_sql()
            cursor.execute(
                f"{sql}; UPDATE {_HEAD} SET seq = %s, hash = %s WHERE id = 1; COMMIT",  # noqa: S608
                [*params, entry.seq, entry.hash],
            )
            entry.pk = cursor.fetchone()[0]
            entry._state.adding, entry._state.db = False, connection.alias
            return entry
        cursor.execute("ROLLBACK")
    # A fresh (or flushed) database has no head row yet: the ORM path makes it.
    with transaction.atomic():
        return insert(entry)
