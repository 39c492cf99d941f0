"""Sign-in through the provider at its edges (``oidc.py``): a groups claim that is one
string or not a list, usernames the dashboard can't use, a discovery document that
names another issuer; and the provider's side, loaded only by a process that uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings as project_settings
from django.contrib.auth.models import User
from pytest_django.asserts import assertContains, assertTemplateUsed

from models_admin import roles
from tests.test_oidc import sign_in, signed_in_user

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class TestGroupsClaim:
    def test_a_single_string_counts_as_one_group(self, client, db, oidc_provider, settings):
        settings.OIDC_GROUPS_CLAIM = "hd"  # Google's hosted domain, one string
        settings.OIDC_ROLE_GROUPS = [(roles.Role.MEMBER.value, "example.com")]
        oidc_provider.set_user("g-sub", preferred_username="gil", hd="example.com")

        sign_in(client, "g-sub")

        assert roles.role_of(User.objects.get(username="gil")) == roles.Role.MEMBER
        assert signed_in_user(client).username == "gil"

    def test_a_claim_that_is_neither_gives_no_group(self, client, db, oidc_provider):
        oidc_provider.set_user("n-sub", preferred_username="nia", groups=7)

        response = sign_in(client, "n-sub")

        assertContains(response, "not in any of the groups", status_code=403)
        assert not User.objects.filter(username="nia").exists()


class TestUsernames:
    @pytest.mark.parametrize(
        ("claims", "shown"),
        [
            ({}, None),
            ({"preferred_username": "x" * 151}, None),
            ({"preferred_username": "a b"}, "a b"),
        ],
        ids=["missing", "too-long", "invalid"],
    )
    def test_one_the_dashboard_cannot_use_is_refused(
        self, client, db, oidc_provider, claims, shown
    ):
        oidc_provider.set_user("u-sub", groups=["ml-users"], **claims)

        response = sign_in(client, "u-sub")

        assert response.status_code == 403
        assertTemplateUsed(response, "registration/oidc_refused.html")
        assert signed_in_user(client) is None
        assert User.objects.count() == 0
        if shown:
            assertContains(response, f"<strong>{shown}</strong>", status_code=403)


@pytest.fixture
def discovery() -> Iterator[tuple[str, dict[str, Any]]]:
    """A server on 127.0.0.1 whose discovery document is the dict it yields (fill it in)."""
    document: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", document
    finally:
        server.shutdown()
        server.server_close()


class TestDiscovery:
    def test_a_document_naming_another_issuer_is_refused(
        self, client, db, settings, discovery, caplog
    ):
        issuer, document = discovery
        document.update(issuer="https://sso.elsewhere.example", authorization_endpoint="x")
        settings.OIDC_ISSUER = issuer

        response = client.get("/oidc/authenticate/")

        assert response.status_code == 502
        assertContains(response, "did not answer", status_code=502)
        assert "discovery names issuer 'https://sso.elsewhere.example'" in caplog.text

    def test_a_document_without_the_endpoints_is_refused(
        self, client, db, settings, discovery, caplog
    ):
        issuer, document = discovery
        document.update(issuer=issuer, authorization_endpoint=f"{issuer}/authorize")
        settings.OIDC_ISSUER = issuer

        response = client.get("/oidc/authenticate/")

        assert response.status_code == 502
        assertContains(response, "did not answer", status_code=502)
        assert "discovery lacks an authorization, token or JWKS endpoint" in caplog.text


class TestProviderSideLoadedWhenUsed:
    # Run in a fresh Python: this process has imported everything already.
    CODE = (
        "import sys, django; django.setup(); from django.urls import resolve; "
        "resolve('/oidc/callback/'); resolve('/accounts/login/'); "
        "from models_admin import oidc; "
        "print(sorted(m for m in ('jwt', 'requests', 'mozilla_django_oidc', "
        "'models_admin.oidc_flow') if m in sys.modules)); "
        "oidc.ProviderBackend; print('jwt' in sys.modules)"
    )

    def test_a_process_without_single_sign_on_does_not_load_it(self):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("OIDC_")}
        environment["DJANGO_SETTINGS_MODULE"] = "tests.settings"

        result = subprocess.run(  # noqa: S603 (our own interpreter and code)
            [sys.executable, "-c", self.CODE],
            cwd=project_settings.BASE_DIR,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[:2] == ["[]", "True"]
