"""A saved API key stays secret: after a key goes in through the page and the app is
used (list, detail, changes, upstream failures, a rejected key), the plaintext is
nowhere: not in the raw database, not in any log record, not in any response, not in
Django's error pages, not in the test output."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.views.debug import ExceptionReporter

from models_admin import remote, services
from models_admin.audit import Actor
from models_admin.models import ApiCredential
from models_admin.sandbox import fingerprint
from tests.helpers import HTMX, url

CANARY = "sandbox-SECRET-canary-9f2c41d7e8b3"
# The sandbox refuses (401) any key that does not start with "sandbox-".
REJECTED_CANARY = "rejected-SECRET-canary-3b8e7d1c24f9"
CANARIES = (CANARY, REJECTED_CANARY)


def leaks(text: str | bytes) -> list[str]:
    """Which canaries (or the middle of one) appear in the text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [c for c in CANARIES if c in text or c[8:-4] in text]


def raw_database() -> bytes:
    """Every byte the database holds: pg_dump on PostgreSQL, the file image on SQLite."""
    if connection.vendor == "postgresql":
        params = connection.settings_dict
        command = ["pg_dump", "--no-owner", "--dbname", params["NAME"]]
        for flag, value in (
            ("--host", params["HOST"]),
            ("--port", params["PORT"]),
            ("--username", params["USER"]),
        ):
            if value:
                command += [flag, str(value)]
        env = {"PGPASSWORD": params["PASSWORD"] or "", "PATH": os.environ.get("PATH", "/usr/bin")}
        return subprocess.run(command, capture_output=True, check=True, env=env, timeout=60).stdout
    assert connection.vendor == "sqlite"
    connection.ensure_connection()
    raw = connection.connection
    assert isinstance(raw, sqlite3.Connection)
    return raw.serialize()


def log_text(records: list[logging.LogRecord]) -> str:
    """Everything a handler could write for these records, whatever its format."""
    formatter = logging.Formatter()
    parts: list[str] = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        parts.append(repr(vars(record)))
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
    return "\n".join(parts)


@pytest.fixture
def everything_logged(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every record at DEBUG, including httpx's and httpcore's chatter."""
    for name in (None, "httpx", "httpcore", "django", "models_admin"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


class Session:
    """Alice's browser, keeping every response it got."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.bodies: list[bytes] = []

    def get(self, path: str, data: dict | None = None, **kwargs):
        return self._keep(self.client.get(path, data, **kwargs))

    def post(self, path: str, data: dict | None = None, **kwargs):
        return self._keep(self.client.post(path, data, **kwargs))

    def _keep(self, response):
        self.bodies.append(response.content)
        self.bodies.append(repr(sorted(response.items())).encode())
        self.bodies.append(str(self.client.cookies).encode())
        return response


def use_the_app(session: Session, sandbox) -> None:
    """Save the canary through the page, then do what users do with it."""
    saved = session.post(url("api_key"), {"api_key": CANARY, "next": url("api_key")}, follow=True)
    assert saved.redirect_chain == [(url("api_key"), 302)]
    workspace = sandbox.state.workspace(CANARY)
    model = next(
        c for c in workspace.models.values() if c["type"] == "fine-tuned" and not c["archived"]
    )

    session.get(url("model_list"))
    session.get(url("model_list"), {"q": "a", "sort": "name"}, headers=HTMX)
    session.get(url("model_detail", model["id"]))
    session.get(url("model_edit", model["id"]), headers=HTMX)
    seen = {"name": model["name"], "description": model["description"]}
    session.post(
        url("model_edit", model["id"]),
        {"name": "renamed-by-alice", "description": "", "expected": json.dumps(seen)},
        headers=HTMX,
    )
    session.post(url("model_row_archive", model["id"]), headers=HTMX)
    session.post(url("model_unarchive", model["id"]), follow=True)
    session.get(url("model_detail", "ft:open-mistral-7b:00000000:20240101:00000000"))
    session.get(url("team"))
    for fault in (
        {"fail_status": 503, "fail_times": 10},
        {"fail_status": 401, "fail_times": 1},
        {"fail_status": 500, "fail_times": 10, "fail_body": {"message": "boom"}},
    ):
        sandbox.state.faults.set(**fault)
        session.get(url("model_list"), {"refresh": "1"})
        session.post(url("model_archive", model["id"]), headers=HTMX)
        sandbox.state.faults.clear()
    sandbox.state.faults.set(fail_status=503, fail_times=10)
    session.post(url("api_key"), {"api_key": CANARY})
    sandbox.state.faults.clear()
    rejected = session.post(url("api_key"), {"api_key": REJECTED_CANARY})
    assert "Mistral rejected this key" in rejected.content.decode()
    session.post(url("api_key"), {"api_key": REJECTED_CANARY}, headers=HTMX)
    session.get(url("api_key"))


class TestTheKeyStaysSecret:
    """Committed for real (transactional tests), so pg_dump sees what the app wrote."""

    def test_nowhere_in_the_database_logs_or_pages(
        self, transactional_db, alice, alice_client, sandbox, everything_logged, capfd, settings
    ):
        settings.MISTRAL_API_MAX_RETRIES = 0
        session = Session(alice_client)

        use_the_app(session, sandbox)
        dump = raw_database()

        credential = ApiCredential.objects.get(user=alice)
        assert credential.get_key() == CANARY
        assert credential.key_encrypted.encode() in dump
        assert b"sand\xe2\x80\xa6e8b3" in dump
        assert leaks(dump) == []
        assert everything_logged.records
        assert any(r.name.startswith("httpx") for r in everything_logged.records)
        assert any(r.name.startswith("httpcore") for r in everything_logged.records)
        assert leaks(log_text(everything_logged.records)) == []
        assert len(session.bodies) > 20
        assert [leaks(body) for body in session.bodies if leaks(body)] == []
        out, err = capfd.readouterr()
        assert leaks(out + err) == []
        assert fingerprint(CANARY) in {r.key_fingerprint for r in sandbox.state.requests}
        assert fingerprint(REJECTED_CANARY) in {r.key_fingerprint for r in sandbox.state.requests}

    def test_nowhere_in_the_admin(self, transactional_db, alice, sandbox):
        admin = User.objects.create_superuser("root", "root@example.com", "root-password")
        services.credential_save(actor=Actor(user=alice), api_key=CANARY)
        credential = ApiCredential.objects.get(user=alice)
        client = Client()
        client.force_login(admin)

        pages = [
            client.get("/admin/models_admin/apicredential/"),
            client.get(f"/admin/models_admin/apicredential/{credential.pk}/change/"),
            client.get("/admin/models_admin/auditentry/"),
        ]

        assert [p.status_code for p in pages] == [200, 200, 200]
        assert [leaks(p.content) for p in pages] == [[], [], []]


class TestErrorReports:
    """Django's error report (what mail_admins sends, DEBUG off) and its technical 500
    page (DEBUG on) for an exception raised while the key is a local variable."""

    @pytest.fixture(params=[False, True], ids=["report", "debug-page"])
    def debug(self, request, settings) -> bool:
        settings.DEBUG = request.param
        return request.param

    @pytest.fixture
    def failing_save(self, monkeypatch):
        def explode(self, *args, **kwargs):
            raise RuntimeError("the database went away")

        monkeypatch.setattr(ApiCredential, "save", explode)

    @staticmethod
    def reports(response) -> tuple[str, str]:
        reporter = ExceptionReporter(response.wsgi_request, *response.exc_info)
        return reporter.get_traceback_html(), reporter.get_traceback_text()

    def test_a_crash_while_saving_hides_the_key(
        self, alice_client, sandbox, debug, failing_save, settings
    ):
        alice_client.raise_request_exception = False

        response = alice_client.post(url("api_key"), {"api_key": CANARY, "next": "/"})

        assert response.status_code == 500
        html, text = self.reports(response)
        assert "credential_save" in html and "credential_save" in text
        assert "the database went away" in text
        assert "********************" in html
        assert leaks(html) == []
        assert leaks(text) == []
        assert leaks(response.content) == []
        assert not debug or b"credential_save" in response.content
        for encryption_key in settings.FIELD_ENCRYPTION_KEYS:
            assert encryption_key not in html

    def test_a_crash_logs_nothing_secret(
        self, alice_client, sandbox, failing_save, everything_logged
    ):
        alice_client.raise_request_exception = False

        alice_client.post(url("api_key"), {"api_key": CANARY})

        assert any(r.name == "django.request" and r.exc_info for r in everything_logged.records)
        assert leaks(log_text(everything_logged.records)) == []

    def test_a_crash_inside_the_http_client_hides_the_key(
        self, alice_client, sandbox, debug, monkeypatch
    ):
        def explode(*args, **kwargs):
            raise RuntimeError("the transport broke")

        monkeypatch.setattr("httpx.HTTPTransport.handle_request", explode)
        alice_client.raise_request_exception = False

        response = alice_client.post(url("api_key"), {"api_key": CANARY})

        assert response.status_code == 500
        html, text = self.reports(response)
        assert "the transport broke" in text
        assert leaks(html) == []
        assert leaks(response.content) == []


class TestReprs:
    def test_the_client_never_shows_its_key(self):
        api = remote.ModelsApi(api_key=CANARY)

        assert leaks(repr(api)) == []
        assert leaks(str(api)) == []

    def test_the_upstream_handle_never_shows_it(self, alice, sandbox):
        services.credential_save(actor=Actor(user=alice), api_key=CANARY, verify=False)

        session = services.upstream_session(alice)

        assert leaks(repr(session)) == []
        assert leaks(repr(session.credential)) == []

    def test_an_upstream_error_never_shows_it(self, alice, sandbox):
        sandbox.state.faults.set(fail_status=401, fail_times=1)
        api = remote.ModelsApi(api_key=CANARY)

        with pytest.raises(remote.ApiAuthFailed) as failed:
            api.list_models()

        error = failed.value
        assert leaks(repr(error)) == []
        assert leaks(str(error)) == []
        assert leaks(repr(vars(error))) == []
        assert leaks(repr(error.__cause__)) == []
