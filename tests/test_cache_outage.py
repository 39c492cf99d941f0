"""The cache is an accelerator, never a dependency (issue 11).

A private ``redis-server`` on a free port is the cache; the test stops it (or freezes it
with SIGSTOP) halfway: the list page, a change and sign-in keep working from the
database and Mistral, a change that succeeded is reported as such, and /readyz says
the cache is degraded without taking the host out of the load balancer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django.asserts import assertContains

from models_admin.audit import Kind, Outcome
from models_admin.inventory import safe_cache
from tests import servers
from tests.conftest import make_user
from tests.helpers import HTMX, fine_tuned, url
from tests.test_audit import entries

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis(settings) -> Iterator[servers.RedisServer]:
    with servers.redis_server() as server:
        settings.CACHES = {
            "default": {
                "BACKEND": "models_admin.redis_cache.RedisCache",
                "LOCATION": server.url,
                "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
            }
        }
        yield server


def list_calls(sandbox) -> int:
    return sum(1 for r in sandbox.state.requests if r.path == "/v1/models")


def sign_in(client, password: str):
    return client.post(reverse("login"), {"username": "sam", "password": password})


def walk(as_alice, sandbox, ft: dict) -> list[int]:
    """What an operator does: the list, a change from a row, the readiness probe, a
    wrong and a right password (someone signing in). The statuses, in order."""
    client = Client()
    listing = as_alice.get(url("model_list"))
    assertContains(listing, ft["id"])
    archived = as_alice.post(url("model_row_archive", ft["id"]), headers=HTMX)
    assertContains(archived, "/row/unarchive/")  # the row, archived: reported as done
    ready = client.get("/readyz")
    wrong = sign_in(client, "wrong")
    right = sign_in(client, "sam-password")
    return [r.status_code for r in (listing, archived, ready, wrong, right)]


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_the_dashboard_works_through_a_cache_outage(redis, as_alice, sandbox, caplog, outage):
    client = Client()
    make_user("sam", None)
    caplog.set_level(logging.WARNING, logger="models_admin.inventory")
    ft = fine_tuned(sandbox)
    as_alice.get(url("model_list"))
    as_alice.get(url("model_list"))
    assert list_calls(sandbox) == 1  # the second page came from Redis
    assert client.get("/readyz").json()["cache"] == "ok"

    redis.stop() if outage == "stopped" else redis.freeze()
    statuses = walk(as_alice, sandbox, ft)
    again = as_alice.get(url("model_list"))

    assert statuses == [200, 200, 200, 200, 302]
    assert again.status_code == 200
    assert list_calls(sandbox) == 3  # both pages after the outage came from Mistral
    assert client.get("/readyz").json() == {"status": "ok", "database": "ok", "cache": "degraded"}
    attempt, outcome = entries(kind__in=[Kind.ATTEMPT, Kind.OUTCOME])
    assert (outcome.attempt, outcome.outcome) == (attempt, Outcome.SUCCEEDED)
    # Many failed cache calls, one warning.
    assert safe_cache.failures >= 1
    warnings = [r for r in caplog.records if "The cache failed" in r.getMessage()]
    assert len(warnings) == 1


def test_lockouts_live_in_the_database_through_an_outage(redis, client, sandbox):
    make_user("sam", None)
    for _ in range(3):
        sign_in(client, "wrong")

    redis.stop()
    fourth, fifth = sign_in(client, "wrong"), sign_in(client, "wrong")
    locked = sign_in(client, "sam-password")

    # The count went on through the outage: the fifth failure locked the account.
    assert [fourth.status_code, fifth.status_code, locked.status_code] == [200, 429, 429]


def test_a_change_after_the_cache_comes_back_is_not_hidden_by_a_stale_list(
    redis, as_alice, sandbox
):
    ft = fine_tuned(sandbox)
    as_alice.get(url("model_list"))  # cached in Redis
    redis.freeze()
    # The change's forget fails: the stale list stays in the frozen Redis.
    as_alice.post(url("model_row_archive", ft["id"]), headers=HTMX)
    redis.thaw()
    safe_cache.reset()  # the pause after a failure is over

    listing = as_alice.get(url("model_list"), {"archived": "yes"})

    # This process does not trust the key it failed to forget: the list is fresh.
    assertContains(listing, ft["id"])
    assert list_calls(sandbox) == 2
