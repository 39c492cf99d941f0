"""Sessions with a copy in Redis (models_admin/sessions.py): no session query on a warm
request, sign-out ends the session everywhere, and a failing Redis is only slower."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from models_admin import roles
from models_admin.inventory import safe_cache
from models_admin.sessions import SessionStore
from tests import servers
from tests.conftest import make_user
from tests.test_cache_outage import redis  # noqa: F401  # the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def cached_sessions(settings, redis) -> Iterator[servers.RedisServer]:  # noqa: F811
    settings.SESSION_ENGINE = "models_admin.sessions"
    yield redis
    safe_cache.reset()


@pytest.fixture
def sam(db):
    return make_user("sam", None)


def signed_in() -> Client:
    client = Client()
    assert (
        client.post(reverse("login"), {"username": "sam", "password": "sam-password"}).status_code
        == 302
    )
    return client


def session_queries(client: Client, path: str = "/account/api-key/") -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return [q["sql"] for q in captured.captured_queries if "django_session" in q["sql"]]


class TestCachedSessions:
    def test_a_warm_request_reads_no_session_from_the_database(self, cached_sessions, sam):
        client = signed_in()

        assert session_queries(client) == []

    def test_a_session_missing_from_redis_is_read_from_the_database_and_copied(
        self, cached_sessions, sam
    ):
        client = signed_in()
        cached_sessions.stop()
        cached_sessions.start()  # an empty Redis: the copies are gone
        safe_cache.reset()

        assert len(session_queries(client)) == 1
        assert session_queries(client) == []

    def test_sign_out_ends_the_session_for_every_worker(self, cached_sessions, sam):
        client = signed_in()
        cookie = client.cookies["sessionid"].value

        client.post(reverse("logout"))
        stolen = Client()
        stolen.cookies["sessionid"] = cookie

        assert stolen.get("/account/api-key/").status_code == 302  # to the sign-in page

    def test_a_sign_out_that_redis_missed_does_not_come_back_with_redis(self, cached_sessions, sam):
        client = signed_in()
        cookie = client.cookies["sessionid"].value
        assert client.get("/account/api-key/").status_code == 200
        cached_sessions.freeze()
        client.post(reverse("logout"))  # the copy can't be dropped
        cached_sessions.thaw()
        safe_cache.reset()
        assert safe_cache.get(SessionStore.cache_key_prefix + cookie) is not None  # still there

        stolen = Client()
        stolen.cookies["sessionid"] = cookie

        assert stolen.get("/account/api-key/").status_code == 302  # to the sign-in page
        assert stolen.get("/account/api-key/").status_code == 302

    def test_a_change_of_access_makes_each_session_read_itself_once(self, cached_sessions, sam):
        client = signed_in()
        assert session_queries(client) == []

        roles.set_role(sam, roles.Role.MEMBER)

        assert len(session_queries(client)) == 1  # its copy was older: read again
        assert session_queries(client) == []  # and copied anew

    def test_a_failing_redis_is_read_around(self, cached_sessions, sam):
        client = signed_in()
        cached_sessions.stop()

        assert len(session_queries(client)) == 1
        client.post(reverse("logout"))  # the copy can't be dropped: no error either
        assert client.get("/account/api-key/").status_code == 302

    def test_an_unknown_cookie_is_a_new_session(self, cached_sessions, sam):
        client = Client()
        client.cookies["sessionid"] = "x" * 32

        assert client.get("/account/api-key/").status_code == 302
