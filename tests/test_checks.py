"""The system check on the audit table's role (``checks.py``): silent where there are no
roles (SQLite), and on PostgreSQL it names what a too-powerful role can do. The
PostgreSQL case uses a session of its own on the maintenance database and a TEMP table
(seen by no one else), so it runs whatever the suite's database is."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

from models_admin import checks
from models_admin.audit_sql import TABLE


@pytest.fixture
def postgres(django_db_blocker) -> Iterator[BaseDatabaseWrapper]:
    """A separate connection to PostgreSQL on 127.0.0.1 as ``postgres`` (trust auth)."""
    backend = load_backend("django.db.backends.postgresql")
    conn = backend.DatabaseWrapper(
        {
            **connection.settings_dict,
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "postgres",
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "OPTIONS": {"connect_timeout": 3},
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": False,
        },
        alias="checks",
    )
    with django_db_blocker.unblock():  # not the test database: a session of its own
        try:
            conn.ensure_connection()
        except DatabaseError:
            pytest.skip("no PostgreSQL on 127.0.0.1:5432")
        try:
            yield conn
        finally:
            conn.close()


class TestAuditRoleCheck:
    def test_manage_py_check_is_silent_without_roles(self, db):
        if connection.vendor == "postgresql":
            pytest.skip("tests/test_db_roles.py covers PostgreSQL's roles")
        out = io.StringIO()

        call_command("check", "--tag", "security", stdout=out)

        assert checks.check_audit_role() == []
        assert "System check identified no issues" in out.getvalue()

    def test_it_names_every_power_of_a_superuser_owner(self, postgres):
        with postgres.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE {TABLE} (seq integer)")

        powers = checks.audit_table_powers(postgres)

        assert powers == [
            "is a superuser",
            "owns the table",
            "UPDATE",
            "DELETE",
            "TRUNCATE",
            "TRIGGER",
        ]

    def test_no_table_yet_means_nothing_to_report(self, postgres):
        assert checks.audit_table_powers(postgres) == []
