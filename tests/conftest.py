"""Fixtures shared by the whole suite.

The Mistral API is never mocked in Python: ``sandbox`` serves the project's own
Mistral-compatible sandbox over real HTTP on 127.0.0.1 and points the client at it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from models_admin import audit_sql, roles, signals, sync
from models_admin.inventory import safe_cache
from models_admin.inventory import shared as inventories
from models_admin.models import ApiCredential, AuditEntry
from models_admin.sandbox import SandboxServer

# The OpenID Connect provider's fixtures (oidc_provider).
# The provider's fixtures. .venv-sdk3 runs tests/test_sandbox_sdk.py only, without the
# package; in .venv, a test that needs them fails loudly if it is missing.
pytest_plugins = ["tests.oidc_provider"] if importlib.util.find_spec("oidc_provider_mock") else []


def _redis_database_per_worker() -> None:
    """pytest-xdist's workers share one Redis, and every test empties the cache (FLUSHDB):
    give each worker its own database, counted from REDIS_URL's (gw0 keeps it, gw1 takes
    the next), as pytest-django gives each its own test database. Set in the environment
    too, for the servers the tests start."""
    url, worker = os.environ.get("REDIS_URL"), os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0) + int(worker.removeprefix("gw"))
    os.environ["REDIS_URL"] = urlunsplit(parts._replace(path=f"/{number}"))
    default = {**django_settings.CACHES["default"], "LOCATION": os.environ["REDIS_URL"]}
    override_settings(CACHES={"default": default}).enable()


_redis_database_per_worker()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``storage`` the tests that request a database or whose module uses Django's
    cache: what changes with DATABASE_URL and REDIS_URL. The PostgreSQL + Redis run of
    .ci/run takes only those (the sandbox, the client and the subprocess checks of
    encryption and deployment are the same on every backend)."""
    for item in items:
        module = getattr(item, "module", None)
        uses_cache = module is not None and any(v is cache for v in vars(module).values())
        if "django_db_setup" in getattr(item, "fixturenames", ()) or uses_cache:
            item.add_marker(pytest.mark.storage)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer, settings) -> Iterator[SandboxServer]:
    """A fresh sandbox (seeded workspaces, no faults, empty request log) for one test."""
    sandbox_server.state.reset()
    settings.MISTRAL_API_URL = sandbox_server.url
    yield sandbox_server
    sandbox_server.state.reset()


# People, named after what they can do (as in healthchecks' tests):
#   alice  team admin, has a key          bob    member, has a key (another workspace)
#   carol  auditor, has a key              charlie member, no key
ALICE_KEY = "sandbox-alice-workspace-7f3a9c21"
BOB_KEY = "sandbox-bob-workspace-19d4e6b8"
CAROL_KEY = "sandbox-carol-workspace-5b2e8f04"


def make_user(username: str, role: roles.Role | None, api_key: str | None = None) -> User:
    # The people of a test are its setting, not what it records (see signals.py).
    with signals.recorded_by_service():
        user = User.objects.create_user(username, f"{username}@example.com", f"{username}-password")
        if role is not None:
            roles.set_role(user, role)
    if api_key is not None:
        credential = ApiCredential(user=user)
        credential.set_key(api_key)
        credential.verified_at = timezone.now()
        credential.save()
    return user


@pytest.fixture
def alice(db, sandbox) -> User:
    return make_user("alice", roles.Role.TEAM_ADMIN, ALICE_KEY)


@pytest.fixture
def bob(db, sandbox) -> User:
    return make_user("bob", roles.Role.MEMBER, BOB_KEY)


@pytest.fixture
def carol(db, sandbox) -> User:
    return make_user("carol", roles.Role.AUDITOR, CAROL_KEY)


@pytest.fixture
def charlie(db, sandbox) -> User:
    return make_user("charlie", roles.Role.MEMBER)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Each test starts with an empty cache (cached inventories, the sync's kept
    snapshots), and with no cache failure remembered from an earlier test."""
    safe_cache.reset()
    inventories.reset()
    sync.kept_snapshots.reset()
    cache.clear()
    yield
    cache.clear()
    safe_cache.reset()


@pytest.fixture(autouse=True)
def _audit_triggers(request) -> Iterator[None]:
    """Keep the audit table's append-only triggers in place for every test, except
    while a transactional test's teardown flushes (empties) the tables, which the
    triggers would refuse."""
    names = request.fixturenames
    transactional = "transactional_db" in names or "live_server" in names
    if not transactional and "db" not in names:
        yield
        return
    # Depend on the database fixture, so this teardown runs before its flush.
    request.getfixturevalue("transactional_db" if transactional else "db")
    audit_sql.install(connection, [f.column for f in AuditEntry._meta.local_fields])
    yield
    if transactional:
        audit_sql.drop(connection)


@pytest.fixture
def as_alice(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def as_bob(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def as_carol(client, carol):
    client.force_login(carol)
    return client


@pytest.fixture
def as_charlie(client, charlie):
    client.force_login(charlie)
    return client
