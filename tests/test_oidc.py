"""Sign-in through a real OpenID Connect provider (tests/oidc_provider.py) on 127.0.0.1.

The dashboard talks to the provider over HTTP (discovery, token, userinfo, JWKS); the
"browser" steps at the provider (its login page) are made with httpx. Nothing of
mozilla-django-oidc is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import runpy
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.test import Client
from pytest_django.asserts import assertContains, assertNotContains, assertTemplateUsed

from models_admin import oidc, roles
from models_admin.models import ApiCredential, AuditEntry
from tests.conftest import make_user
from tests.oidc_provider import CLIENT_ID, jwt_payload

# The provider's authlib warns about its own deprecated internals.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parent.parent


def start_sign_in(client: Client) -> str:
    """Click "Sign in with ..." : the dashboard sends the browser to the provider."""
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 302, response.content
    return response["Location"]


def log_in_at_provider(authorize_url: str, sub: str) -> str:
    """Fill in the provider's login page; returns where it sends the browser back."""
    page = httpx.get(authorize_url)
    assert page.status_code == 200 and 'name="sub"' in page.text
    response = httpx.post(authorize_url, data={"sub": sub})
    assert response.status_code == 302, response.text
    return response.headers["location"]


def sign_in(client: Client, sub: str):
    return client.get(log_in_at_provider(start_sign_in(client), sub))


def signed_in_user(client: Client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query[name] = value
    return parts.path + "?" + "&".join(f"{k}={v}" for k, v in query.items())


@pytest.fixture
def dana_at_provider(oidc_provider):
    """Dana exists only at the provider, in the members' group."""
    oidc_provider.set_user(
        "dana-sub", preferred_username="dana", email="dana@example.com", groups=["ml-users"]
    )
    return oidc_provider


class TestFirstSignIn:
    def test_it_creates_the_user_with_the_mapped_role_and_no_password(
        self, client, db, dana_at_provider
    ):
        response = sign_in(client, "dana-sub")

        assert response.status_code == 302
        assert response["Location"] == "/models/"
        dana = User.objects.get(username="dana")
        assert signed_in_user(client) == dana
        assert dana.email == "dana@example.com"
        assert not dana.has_usable_password()
        assert roles.role_of(dana) == roles.Role.MEMBER
        entry = AuditEntry.objects.get()
        assert entry.action == AuditEntry.Action.MEMBER_ADD
        assert entry.target_id == "dana"
        assert entry.changes == {"role": [None, "member"]}
        assert entry.details["source"] == "identity provider"
        assert entry.details["group"] == "ml-users"

    def test_it_uses_pkce_state_and_nonce(self, client, db, dana_at_provider):
        authorize_url = start_sign_in(client)
        params = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}

        client.get(log_in_at_provider(authorize_url, "dana-sub"))

        assert params["response_type"] == "code"
        assert params["client_id"] == CLIENT_ID
        assert params["code_challenge_method"] == "S256"
        assert params["state"] and params["nonce"]
        verifier = dana_at_provider.token_requests[-1]["code_verifier"]
        digest = hashlib.sha256(verifier.encode()).digest()
        assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == params["code_challenge"]
        assert jwt_payload(dana_at_provider.issued_id_tokens[-1])["nonce"] == params["nonce"]
        assert signed_in_user(client) is not None

    def test_the_session_lasts_django_session_hours(self, client, db, dana_at_provider, settings):
        sign_in(client, "dana-sub")

        assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE
        assert client.session.get_expire_at_browser_close()

    def test_the_next_page_is_kept(self, client, db, dana_at_provider):
        response = client.get("/oidc/authenticate/?next=/account/api-key/")

        back = client.get(log_in_at_provider(response["Location"], "dana-sub"))

        assert back["Location"] == "/account/api-key/"
        assert client.get("/account/api-key/").status_code == 200

    def test_groups_may_come_from_a_nested_claim(self, client, db, oidc_provider, settings):
        settings.OIDC_GROUPS_CLAIM = "realm_access.roles"
        oidc_provider.set_user(
            "kc-sub", preferred_username="kim", realm_access={"roles": ["ml-auditors"]}
        )

        sign_in(client, "kc-sub")

        assert roles.role_of(User.objects.get(username="kim")) == roles.Role.AUDITOR

    def test_the_first_listed_group_wins(self, client, db, oidc_provider):
        oidc_provider.set_user(
            "both-sub", preferred_username="max", groups=["ml-users", "ml-platform-admins"]
        )

        sign_in(client, "both-sub")

        assert roles.role_of(User.objects.get(username="max")) == roles.Role.TEAM_ADMIN


class TestRefusals:
    def test_a_user_in_none_of_the_groups_is_refused_and_not_created(
        self, client, db, oidc_provider
    ):
        oidc_provider.set_user("sam-sub", preferred_username="sam", groups=["sales"])

        response = sign_in(client, "sam-sub")

        assert response.status_code == 403
        assertTemplateUsed(response, "registration/oidc_refused.html")
        assertContains(response, "not in any of the groups", status_code=403)
        assertContains(response, "<code>ml-users</code>", status_code=403)
        assert not User.objects.filter(username="sam").exists()
        assert signed_in_user(client) is None
        assert not AuditEntry.objects.exists()

    def test_a_tampered_state_is_refused(self, client, db, dana_at_provider):
        callback = log_in_at_provider(start_sign_in(client), "dana-sub")

        response = client.get(with_param(callback, "state", "forged-state"))

        assert response.status_code == 400
        assertContains(response, "could not be verified", status_code=400)
        assert signed_in_user(client) is None
        assert not User.objects.filter(username="dana").exists()
        assert dana_at_provider.token_requests == []

    def test_a_callback_without_a_started_sign_in_is_refused(self, client, db, dana_at_provider):
        callback = log_in_at_provider(start_sign_in(client), "dana-sub")

        response = Client().get(callback)

        assert response.status_code == 400
        assert not User.objects.filter(username="dana").exists()

    def test_a_code_used_twice_is_refused(self, client, db, dana_at_provider):
        callback = log_in_at_provider(start_sign_in(client), "dana-sub")
        client.get(callback)
        client.logout()
        # A new sign-in's state, with the old (spent) code.
        fresh = log_in_at_provider(start_sign_in(client), "dana-sub")
        code = parse_qs(urlsplit(callback).query)["code"][0]

        response = client.get(with_param(fresh, "code", code))

        assertContains(response, "did not complete", status_code=400)
        assert len(dana_at_provider.token_requests) == 2
        assert signed_in_user(client) is None

    def test_a_tampered_id_token_is_refused(self, client, db, dana_at_provider):
        # Dana is a member; the forged token claims the admins' group.
        dana_at_provider.tamper_next_id_token = lambda claims: claims.update(
            groups=["ml-platform-admins"]
        )

        response = sign_in(client, "dana-sub")

        assert response.status_code == 400
        assertContains(response, "could not be verified", status_code=400)
        assert signed_in_user(client) is None
        assert not User.objects.filter(username="dana").exists()

    def test_an_id_token_for_another_client_is_refused(self, db, settings, oidc_provider):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = int(time.time())
        claims = {"iss": oidc_provider.url, "sub": "x", "iat": now, "exp": now + 60}
        token = jwt.encode({**claims, "aud": "another-app"}, key, algorithm="RS256")

        with pytest.raises(SuspiciousOperation, match="(?i)audience"):
            oidc.ProviderBackend().get_payload_data(token, key.public_key())
        good = jwt.encode({**claims, "aud": CLIENT_ID}, key, algorithm="RS256")
        assert oidc.ProviderBackend().get_payload_data(good, key.public_key())["sub"] == "x"

    def test_a_deactivated_user_cannot_come_back(self, client, db, dana_at_provider):
        dana = make_user("dana", roles.Role.MEMBER)
        dana.is_active = False
        dana.save()

        response = sign_in(client, "dana-sub")

        assert response.status_code == 403
        assertContains(response, "deactivated", status_code=403)
        assert signed_in_user(client) is None
        dana.refresh_from_db()
        assert not dana.is_active

    def test_deactivating_ends_the_session(self, client, db, dana_at_provider):
        sign_in(client, "dana-sub")
        assert client.get("/account/api-key/").status_code == 200

        User.objects.filter(username="dana").update(is_active=False)

        response = client.get("/account/api-key/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")

    def test_a_break_glass_account_is_not_reachable_through_the_provider(
        self, client, db, oidc_provider, settings
    ):
        settings.OIDC_BREAK_GLASS_USERS = ["root"]
        oidc_provider.set_user("r-sub", preferred_username="root", groups=["ml-platform-admins"])

        response = sign_in(client, "r-sub")

        assert response.status_code == 403
        assert not User.objects.filter(username="root").exists()

    def test_a_superuser_is_not_reachable_through_the_provider(self, client, db, oidc_provider):
        User.objects.create_superuser("admin", "admin@example.com", "admin-password")
        oidc_provider.set_user("a-sub", preferred_username="admin", groups=["ml-users"])

        response = sign_in(client, "a-sub")

        assert response.status_code == 403
        assert signed_in_user(client) is None
        assert not User.objects.get(username="admin").groups.exists()

    def test_refusals_do_not_lock_others_out(self, client, db, dana_at_provider, settings):
        dana_at_provider.set_user("sam-sub", preferred_username="sam", groups=["sales"])
        for _ in range(settings.AXES_FAILURE_LIMIT + 1):
            assert sign_in(Client(), "sam-sub").status_code == 403

        sign_in(client, "dana-sub")

        assert signed_in_user(client).username == "dana"

    def test_a_provider_that_does_not_answer_gets_a_clear_page(
        self, client, db, oidc_provider, settings
    ):
        settings.OIDC_ISSUER = "http://127.0.0.1:9"

        response = client.get("/oidc/authenticate/")

        assert response.status_code == 502
        assertContains(response, "did not answer", status_code=502)

    def test_it_is_off_without_an_issuer(self, client, db):
        assert client.get("/oidc/authenticate/").status_code == 404
        assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


class TestRoleChanges:
    def test_a_changed_group_changes_the_role_at_the_next_sign_in(
        self, client, db, dana_at_provider
    ):
        sign_in(client, "dana-sub")
        dana_at_provider.set_user(
            "dana-sub", preferred_username="dana", groups=["ml-platform-admins"]
        )

        sign_in(Client(), "dana-sub")

        dana = User.objects.get(username="dana")
        assert roles.role_of(dana) == roles.Role.TEAM_ADMIN
        entry = AuditEntry.objects.order_by("-seq").first()
        assert entry.action == AuditEntry.Action.MEMBER_ROLE
        assert entry.target_id == "dana"
        assert entry.changes == {"role": ["member", "team_admin"]}
        assert entry.details["group"] == "ml-platform-admins"

    def test_an_unchanged_role_writes_no_entry(self, client, db, dana_at_provider):
        sign_in(client, "dana-sub")

        sign_in(Client(), "dana-sub")

        assert AuditEntry.objects.count() == 1

    def test_an_existing_local_account_is_taken_over_with_its_key(
        self, client, db, sandbox, dana_at_provider
    ):
        dana = make_user("dana", roles.Role.AUDITOR, "sandbox-dana-key")

        sign_in(client, "dana-sub")

        assert signed_in_user(client) == dana
        assert roles.role_of(dana) == roles.Role.MEMBER
        assert ApiCredential.objects.get(user=dana).get_key() == "sandbox-dana-key"
        assert AuditEntry.objects.get().changes == {"role": ["auditor", "member"]}


class TestSignInPage:
    def test_it_offers_only_the_provider_by_default(self, client, db, oidc_provider):
        response = client.get("/accounts/login/?next=/audit/")

        assertContains(response, 'href="/oidc/authenticate/?next=/audit/"')
        assertContains(response, "Sign in with Example SSO")
        assertNotContains(response, 'name="password"')

    def test_it_keeps_the_password_form_for_break_glass(self, client, db, oidc_provider, settings):
        settings.OIDC_BREAK_GLASS_USERS = ["root"]

        response = client.get("/accounts/login/")

        assertContains(response, "Sign in with Example SSO")
        assertContains(response, "<details>")
        assertContains(response, 'name="password"')

    def test_without_oidc_it_is_the_password_form(self, client, db):
        response = client.get("/accounts/login/")

        assertContains(response, 'name="password"')
        assertNotContains(response, "/oidc/authenticate/")

    def test_only_break_glass_accounts_sign_in_with_a_password(
        self, client, db, oidc_provider, settings
    ):
        settings.OIDC_BREAK_GLASS_USERS = ["root"]
        make_user("root", roles.Role.TEAM_ADMIN)
        make_user("bob", roles.Role.MEMBER)

        refused = client.post("/accounts/login/", {"username": "bob", "password": "bob-password"})
        accepted = client.post(
            "/accounts/login/", {"username": "root", "password": "root-password"}
        )

        assert refused.status_code == 200  # the form again, with its error
        assert accepted.status_code == 302
        assert signed_in_user(client).username == "root"


class TestSettings:
    def load(self, monkeypatch, **env: str) -> dict:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(ROOT / "dashboard" / "settings.py"))

    def test_it_reads_the_provider_from_the_environment(self, monkeypatch):
        values = self.load(
            monkeypatch,
            OIDC_ISSUER="https://sso.example.com/realms/acme/",
            OIDC_CLIENT_ID="dash",
            OIDC_ROLE_GROUPS="team-admin=admins, member=users",
        )

        assert values["OIDC_ISSUER"] == "https://sso.example.com/realms/acme"
        assert values["OIDC_ROLE_GROUPS"] == [("team_admin", "admins"), ("member", "users")]
        assert "models_admin.oidc.ProviderBackend" in values["AUTHENTICATION_BACKENDS"]
        assert values["OIDC_USE_PKCE"] is True

    def test_it_is_off_without_an_issuer(self, monkeypatch):
        monkeypatch.delenv("OIDC_ISSUER", raising=False)

        values = self.load(monkeypatch)

        assert "models_admin.oidc.ProviderBackend" not in values["AUTHENTICATION_BACKENDS"]

    @pytest.mark.parametrize(
        "env",
        [
            {"OIDC_CLIENT_ID": "", "OIDC_ROLE_GROUPS": "member=users"},
            {"OIDC_CLIENT_ID": "dash", "OIDC_ROLE_GROUPS": ""},
            {"OIDC_CLIENT_ID": "dash", "OIDC_ROLE_GROUPS": "boss=users"},
        ],
    )
    def test_it_fails_loudly_when_incomplete(self, monkeypatch, env):
        with pytest.raises(ImproperlyConfigured):
            self.load(monkeypatch, OIDC_ISSUER="https://sso.example.com", **env)
