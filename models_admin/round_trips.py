"""PostgreSQL transactions in fewer round trips, for the two hot paths that hold a lock
other processes wait on: an audit append (audit_append) and a bulk item's claim
(bulk_claim).

Through Django's ``transaction.atomic`` each statement is a round trip, and BEGIN and
COMMIT are two more; a lock taken by the first statement is held across all of them.
psycopg's client-side binding (Django's default) sends several statements as one
query, so a transaction can carry its own ``BEGIN`` and ``COMMIT`` in the statements
it sends: the lock is then held while the database runs them, not while the network
and a busy Python process answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection
from django.db.backends.utils import CursorWrapper


def available() -> bool:
    """True on PostgreSQL outside any ``atomic`` block (inside one, the transaction and
    its commit are the caller's)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


@contextmanager
def explicit_transaction() -> Iterator[CursorWrapper]:
    """A cursor whose statements begin and end their own transaction (``BEGIN; ...``,
    ``...; COMMIT``). Any error rolls it back before it is raised; a connection that
    can't roll back is closed (a new one opens on next use), never left inside it."""
    with connection.cursor() as cursor:
        try:
            yield cursor
        except BaseException:
            try:
                cursor.execute("ROLLBACK")
            except Exception:
                connection.close()
            raise
