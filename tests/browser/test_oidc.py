"""Signing in through the company's identity provider, in Chromium: the dashboard's
sign-in page, the provider's own login page (tests/oidc_provider.py, on 127.0.0.1), and
back, signed in with the role the provider's groups give."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from models_admin import roles
from models_admin.models import AuditEntry

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

NEW_KEY = "sandbox-oidc-browser-7c1d"


def sign_in_through_provider(page: Page, live_server, sub: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    expect(page.get_by_label("Password")).to_have_count(0)
    page.get_by_role("link", name="Sign in with Example SSO").click()
    # The provider's login page: a different origin, its own form.
    expect(page).to_have_url(re.compile(r"^http://127\.0\.0\.1:\d+/oauth2/authorize\?"))
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()


def csp_violations(browser_log) -> list[str]:
    return [m for m in browser_log.console_errors if "Content Security Policy" in m]


class TestSignInThroughTheProvider:
    def test_it_lands_signed_in_with_the_mapped_role(
        self, page, live_server, transactional_db, sandbox, oidc_provider, browser_log
    ):
        oidc_provider.set_user(
            "olivia-sub", preferred_username="olivia", groups=["ml-platform-admins"]
        )

        sign_in_through_provider(page, live_server, "olivia-sub")

        expect(page).to_have_url(re.compile(r"/models/$"))
        expect(page.locator(".who")).to_have_text("olivia")
        expect(page.get_by_role("link", name="Team")).to_be_visible()
        expect(page.get_by_role("link", name="Audit log")).to_be_visible()
        olivia = User.objects.get(username="olivia")
        assert roles.role_of(olivia) == roles.Role.TEAM_ADMIN
        assert not olivia.has_usable_password()
        # Her own Mistral key works as for any user.
        expect(page.get_by_role("heading", name="Add your Mistral API key")).to_be_visible()
        page.goto(f"{live_server.url}/account/api-key/")
        page.get_by_label("Mistral API key").fill(NEW_KEY)
        page.get_by_role("button", name="Check and save").click()
        expect(page.locator("#alerts")).to_contain_text("API key saved.")
        assert csp_violations(browser_log) == []

    def test_a_user_outside_the_groups_sees_why_and_gets_no_account(
        self, page, live_server, transactional_db, oidc_provider, browser_log
    ):
        oidc_provider.set_user("sam-sub", preferred_username="sam", groups=["sales"])

        sign_in_through_provider(page, live_server, "sam-sub")

        expect(page.get_by_role("heading", name="You can't sign in here")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text("ml-users")
        expect(page.get_by_role("link", name="Back to sign-in")).to_be_visible()
        assert not User.objects.filter(username="sam").exists()
        assert csp_violations(browser_log) == []

    def test_a_changed_group_changes_the_role_at_the_next_sign_in(
        self, page, live_server, transactional_db, sandbox, oidc_provider
    ):
        oidc_provider.set_user("mia-sub", preferred_username="mia", groups=["ml-users"])
        sign_in_through_provider(page, live_server, "mia-sub")
        expect(page.locator(".who")).to_have_text("mia")
        expect(page.get_by_role("link", name="Team")).to_have_count(0)
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/accounts/login/"))

        oidc_provider.set_user("mia-sub", preferred_username="mia", groups=["ml-platform-admins"])
        sign_in_through_provider(page, live_server, "mia-sub")

        expect(page.get_by_role("link", name="Team")).to_be_visible()
        change = AuditEntry.objects.filter(action=AuditEntry.Action.MEMBER_ROLE).get()
        assert change.changes == {"role": ["member", "team_admin"]}
