"""The benchmark's world: database, cache, sandboxes and users.

``configure()`` runs before Django is set up (it decides the settings module and the
database); ``Environment.create()`` runs after it: migrate, check the database is
fresh, clear the cache, start two sandboxes (100 and 2,000 fine-tuned models per key;
the large one with 50 ms of injected latency) and create three team admins, each with
their own sandbox key, hence their own workspace and cached inventory.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "bench.settings"

# One key per user: the sandbox seeds one workspace per key, the dashboard caches one
# inventory per key.
ADMIN_KEY = "sandbox-bench-admin"  # 2,000 models: upstream counts, timings, gunicorn
SMALL_KEY = "sandbox-bench-small"  # 100 models: the small side of the query counts
BULK_KEY = "sandbox-bench-bulk"  # 2,000 models: the bulk archive


@dataclass
class Paths:
    tmpdir: Path  # removed at the end: the SQLite file (if temporary), gunicorn's log
    database_url: str
    redis_url: str
    temporary_database: bool


def configure() -> Paths:
    """Environment for Django (call before django.setup()): settings module, database
    (DATABASE_URL, else a fresh SQLite file in a temporary directory), quiet logs."""
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    tmpdir = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    database_url = os.environ.get("DATABASE_URL", "").strip()
    temporary = not database_url
    if temporary:
        database_url = f"sqlite:///{tmpdir / 'bench.sqlite3'}"
        os.environ["DATABASE_URL"] = database_url
    return Paths(tmpdir, database_url, os.environ.get("REDIS_URL", "").strip(), temporary)


def cleanup(paths: Paths) -> None:
    shutil.rmtree(paths.tmpdir, ignore_errors=True)


@dataclass
class Environment:
    paths: Paths
    small: Any  # SandboxServer, SMALL_MODELS models per key, no latency
    large: Any  # SandboxServer, LARGE_MODELS models per key, LATENCY_MS latency
    admin: Any  # User (ADMIN_KEY)
    small_user: Any  # User (SMALL_KEY)
    bulk_user: Any  # User (BULK_KEY)
    clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, paths: Paths) -> Environment:
        from django.core.cache import cache
        from django.core.management import call_command

        from bench.common import LARGE_MODELS, LATENCY_MS, SMALL_MODELS, BenchError
        from models_admin.models import AuditEntry
        from models_admin.sandbox import SandboxServer

        call_command("migrate", interactive=False, verbosity=0)
        if AuditEntry.objects.exists():
            raise BenchError(
                "the database already has audit entries; the benchmark needs a fresh one "
                "(the audit log is append-only, so it can't be emptied): unset DATABASE_URL "
                "for a temporary SQLite file, or point it at a new, empty database"
            )
        cache.clear()
        small = SandboxServer(models=SMALL_MODELS).start()
        large = SandboxServer(models=LARGE_MODELS, latency_ms=LATENCY_MS).start()
        return cls(
            paths=paths,
            small=small,
            large=large,
            admin=_team_admin("bench-admin", ADMIN_KEY),
            small_user=_team_admin("bench-small", SMALL_KEY),
            bulk_user=_team_admin("bench-bulk", BULK_KEY),
        )

    def client(self, user: Any) -> Any:
        """A logged-in django.test.Client for the user (one per user, kept)."""
        from django.test import Client

        if user.username not in self.clients:
            client = Client()
            client.force_login(user)
            self.clients[user.username] = client
        return self.clients[user.username]

    def stop(self) -> None:
        for server in (self.small, self.large):
            server.stop()


def _team_admin(username: str, api_key: str) -> Any:
    """A team admin with a stored (encrypted) key, like tests.conftest.make_user."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from models_admin import roles
    from models_admin.models import ApiCredential

    user, _ = User.objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com"}
    )
    user.set_password(f"{username}-password")
    user.save()
    roles.set_role(user, roles.Role.TEAM_ADMIN)
    credential = ApiCredential.objects.filter(user=user).first() or ApiCredential(user=user)
    credential.set_key(api_key)
    credential.verified_at = timezone.now()
    credential.save()
    return user


def machine_info(paths: Paths) -> dict[str, Any]:
    import django
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("select sqlite_version()")
        else:
            cursor.execute("show server_version")
        db_version = cursor.fetchone()[0]
    cache_backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    return {
        "git": _git_state(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "database": connection.vendor,
        "database_version": db_version,
        "database_temporary": paths.temporary_database,
        "cache": cache_backend,
        "settings": SETTINGS_MODULE,
        "bulk_concurrency": settings.BULK_CONCURRENCY,
        "model_list_cache_seconds": settings.MODEL_LIST_CACHE_SECONDS,
        "python_loop_seconds": python_loop_seconds(),
    }


def python_loop_seconds(additions: int = 5_000_000, tries: int = 3) -> float:
    """The machine's speed per core, to compare runs made on different machines: the
    best of ``tries`` pure-Python loops of ``additions`` additions. Ratios cancel a
    machine's speed, not the page's fixed costs against the upstream call's latency."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        total = 0
        for i in range(additions):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def _git_state() -> dict[str, Any]:
    """Which code was measured: the commit, and whether files outside bench/ differ from it."""
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {}
    changed = [line[3:] for line in status if not line[3:].startswith("bench/")]
    return {"commit": commit, "changed_outside_bench": changed}
