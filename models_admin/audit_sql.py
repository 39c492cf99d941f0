"""Database triggers that make the audit table append-only, for SQLite and PostgreSQL.

UPDATE and DELETE (and TRUNCATE on PostgreSQL) are refused by the database itself,
whoever connects. One UPDATE is let through: clearing ``actor_id`` and nothing else,
which is what deleting a user does (``on_delete=SET_NULL``); the entry keeps the
actor's username, email, role and id (``actor_pk``, hashed since hash version 2, so
verify_chain can tell the link may only be that id or nothing).

Triggers stop every role, but the table's owner can drop them: run the app as a role
that may only INSERT and SELECT this table (README, "Least privilege in the database";
checks.py warns otherwise).

Migrations install the triggers (0003_audit_triggers). A migration that adds columns to
AuditEntry must re-install them, so that the SQLite trigger compares the new columns.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "models_admin_auditentry"
_REFUSAL = "audit entries are append-only"


def _sqlite_statements(columns: Sequence[str]) -> list[str]:
    unchanged = " AND ".join(f'NEW."{c}" IS OLD."{c}"' for c in columns if c != "actor_id")
    return [
        f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
            WHEN NOT (OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL AND {unchanged})
            BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END""",
        f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
            BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END""",
    ]


_POSTGRES_STATEMENTS = [
    f"""CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
           AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '{_REFUSAL} (% refused)', TG_OP USING ERRCODE = 'integrity_constraint_violation';
    END
    $$ LANGUAGE plpgsql""",
    f"DROP TRIGGER IF EXISTS {TABLE}_no_change ON {TABLE}",
    f"""CREATE TRIGGER {TABLE}_no_change BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()""",
    f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}",
    f"""CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_append_only()""",
]


def install(connection: BaseDatabaseWrapper, columns: Sequence[str]) -> None:
    """Create (or re-create) the triggers. ``columns``: every column of the table."""
    if connection.vendor == "sqlite":
        statements = [f"DROP TRIGGER IF EXISTS {TABLE}_no_update", *_sqlite_statements(columns)]
    elif connection.vendor == "postgresql":
        statements = _POSTGRES_STATEMENTS
    else:
        raise NotImplementedError(f"No append-only triggers for {connection.vendor}.")
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def drop(connection: BaseDatabaseWrapper) -> None:
    """Remove the triggers (test teardown flushes tables; migrations roll back)."""
    if connection.vendor == "sqlite":
        statements = [
            f"DROP TRIGGER IF EXISTS {TABLE}_no_update",
            f"DROP TRIGGER IF EXISTS {TABLE}_no_delete",
        ]
    else:
        statements = [
            f"DROP TRIGGER IF EXISTS {TABLE}_no_change ON {TABLE}",
            f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}",
        ]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
