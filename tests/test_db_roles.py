"""Least privilege in the database (issue 13): the check says when the app's role can
still alter the audit log. PostgreSQL only; roles are created inside the test's
transaction, so they vanish with it."""

from __future__ import annotations

import uuid

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from models_admin import audit, checks
from models_admin.audit import Action, Actor
from models_admin.audit_sql import TABLE
from models_admin.models import AuditEntry

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (run with DATABASE_URL=postgres://...)")


def sql(*statements: str) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture
def roles(db):
    """An owner role that owns the audit table, and an app role with the README's grants."""
    suffix = uuid.uuid4().hex[:8]
    owner, app = f"dashboard_owner_{suffix}", f"dashboard_app_{suffix}"
    sql(
        f"CREATE ROLE {owner} NOLOGIN",
        f"CREATE ROLE {app} NOLOGIN",
        f"ALTER TABLE {TABLE} OWNER TO {owner}",
        f"GRANT SELECT, INSERT ON {TABLE} TO {app}",
        f"GRANT UPDATE (actor_id) ON {TABLE} TO {app}",
    )
    yield owner, app
    sql("RESET ROLE")  # the test's transaction rolls the roles and grants back


def as_role(role: str) -> list[str]:
    sql(f"SET ROLE {role}")
    try:
        return checks.audit_table_powers()
    finally:
        sql("RESET ROLE")


class TestAuditRoleCheck:
    def test_the_app_role_of_the_readme_passes(self, roles):
        owner, app = roles

        assert as_role(app) == []

    def test_the_owner_can_drop_the_triggers(self, roles):
        owner, app = roles

        assert "owns the table" in as_role(owner)

    def test_a_role_with_update_delete_or_truncate_is_named(self, roles):
        owner, app = roles
        sql(f"GRANT UPDATE, DELETE, TRUNCATE ON {TABLE} TO {app}")

        assert as_role(app) == ["UPDATE", "DELETE", "TRUNCATE"]

    def test_the_app_role_appends_but_cannot_rewrite(self, roles, alice):
        owner, app = roles
        sql(
            f"GRANT USAGE ON SCHEMA public TO {app}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
            f"REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER ON {TABLE} FROM {app}",
            f"GRANT UPDATE (actor_id) ON {TABLE} TO {app}",
            f"SET ROLE {app}",
        )

        audit.event(actor=Actor(alice), action=Action.MEMBER_ROLE, target_id="bob")
        with pytest.raises(DatabaseError, match="must be owner"), transaction.atomic():
            sql(f"DROP TRIGGER {TABLE}_no_change ON {TABLE}")
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            sql(f"DELETE FROM {TABLE}")  # noqa: S608
        sql("RESET ROLE")
        assert AuditEntry.objects.count() == 1

    def test_manage_py_check_warns(self, db, capsys):
        # The test suite connects as a superuser.
        call_command("check")

        assert "models_admin.W001" in capsys.readouterr().err
