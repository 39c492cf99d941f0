"""System check: warn when the app's database role could still rewrite the audit log.

The triggers refuse UPDATE, DELETE and TRUNCATE on the audit table, but a role that
owns the table (or is a superuser) can drop them, and a role with those privileges
needs only that one step. In production, migrations run as an owner role and the app
as a role that may only INSERT and SELECT the audit table (README, "Least privilege in
the database"); ``manage.py check`` says when that is not so. PostgreSQL only: SQLite
has no roles.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import DatabaseError, connection
from django.db.backends.base.base import BaseDatabaseWrapper

from models_admin.audit_sql import TABLE

_POWERS = """
SELECT r.rolsuper,
       pg_has_role(current_user, c.relowner, 'USAGE'),
       has_table_privilege(current_user, c.oid, 'UPDATE'),
       has_table_privilege(current_user, c.oid, 'DELETE'),
       has_table_privilege(current_user, c.oid, 'TRUNCATE'),
       has_table_privilege(current_user, c.oid, 'TRIGGER')
FROM pg_class c, pg_roles r
WHERE c.oid = to_regclass(%s) AND r.rolname = current_user
"""
_NAMES = ("is a superuser", "owns the table", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER")


def audit_table_powers(conn: BaseDatabaseWrapper = connection) -> list[str]:
    """What the connection's role can do to the audit table beyond INSERT and SELECT
    (empty: nothing, or not PostgreSQL, or no table yet). Raises DatabaseError."""
    if conn.vendor != "postgresql":
        return []
    with conn.cursor() as cursor:
        cursor.execute(_POWERS, [TABLE])
        row = cursor.fetchone()
    return [name for name, held in zip(_NAMES, row or (), strict=False) if held]


def check_audit_role(**kwargs: Any) -> list[CheckMessage]:
    try:
        powers = audit_table_powers()
    except DatabaseError:
        return []  # no database to ask: the database checks say so
    if not powers:
        return []
    return [
        Warning(
            f"The app's database role can still alter the audit log ({', '.join(powers)}).",
            hint=(
                "Run migrations as an owner role and the app as a role with only INSERT "
                "and SELECT on the audit table (README: Least privilege in the database)."
            ),
            obj=TABLE,
            id="models_admin.W001",
        )
    ]


def register_checks() -> None:
    register(check_audit_role, Tags.security, Tags.database)
