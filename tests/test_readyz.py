"""``/readyz`` when the database is unreachable: 503, so the load balancer stops sending
traffic to a host that can do nothing (the cache's outage is in test_cache_outage.py).
Served by gunicorn, whose database is a PostgreSQL port nothing listens on."""

from __future__ import annotations

import httpx

from tests import servers
from tests.workers import process_env


class TestReadyz:
    def test_it_is_unavailable_while_the_database_is_unreachable(self, db):
        dead = f"postgres://postgres@127.0.0.1:{servers.free_port()}/nothing"
        env = {**process_env("http://127.0.0.1:9"), "DATABASE_URL": dead}

        with servers.gunicorn(env, "--workers", "1") as (base, process):
            ready = httpx.get(f"{base}/readyz", timeout=30)
            alive = httpx.get(f"{base}/healthz", timeout=30)
        out, err = process.communicate(timeout=15)

        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert ready.json()["database"] == "unreachable"
        assert alive.status_code == 200  # the process itself is fine: no restart needed
        assert "Readiness: database unreachable" in out + err
