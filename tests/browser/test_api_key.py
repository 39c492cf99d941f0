"""A new user adds their Mistral key in the browser, and sees it only masked afterwards."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from models_admin.models import ApiCredential
from tests.browser.conftest import login

pytestmark = pytest.mark.browser

# Any key starting with "sandbox-" is accepted by the sandbox and owns a workspace.
NEW_KEY = "sandbox-browser-4f2a9c1e77"


class TestAddingAKey:
    def test_a_new_user_is_led_to_the_form_and_then_to_their_models(
        self, page, live_server, charlie, sandbox
    ):
        login(page, live_server, "charlie")
        expect(page.get_by_role("heading", name="Add your Mistral API key")).to_be_visible()
        page.get_by_role("link", name="Add your API key").click()
        expect(page).to_have_url(re.compile(r"/account/api-key/"))

        page.get_by_label("Mistral API key").fill(NEW_KEY)
        page.get_by_role("button", name="Check and save").click()

        expect(page).to_have_url(re.compile(r"/models/$"))
        expect(page.locator("#alerts")).to_contain_text("API key saved.")
        workspace = sandbox.state.workspace(NEW_KEY)
        fine_tuned = next(c for c in workspace.models.values() if c["type"] == "fine-tuned")
        expect(page.locator(f'tr[data-model-id="{fine_tuned["id"]}"]')).to_be_visible()

    def test_the_saved_key_is_shown_only_masked(self, page, live_server, charlie, sandbox):
        login(page, live_server, "charlie")
        page.goto(f"{live_server.url}/account/api-key/")
        page.get_by_label("Mistral API key").fill(NEW_KEY)
        page.get_by_role("button", name="Check and save").click()
        expect(page).to_have_url(re.compile(r"/models/$"))

        page.goto(f"{live_server.url}/account/api-key/")

        masked = f"{NEW_KEY[:4]}…{NEW_KEY[-4:]}"
        expect(page.get_by_role("heading", name="Saved key")).to_be_visible()
        expect(page.locator("code", has_text=masked)).to_be_visible()
        expect(page.get_by_label("Mistral API key")).to_have_value("")
        assert NEW_KEY not in page.content()
        assert ApiCredential.objects.get(user=charlie).key_masked == masked

    def test_a_key_mistral_rejects_is_a_form_error_and_nothing_is_saved(
        self, page, live_server, charlie, sandbox
    ):
        login(page, live_server, "charlie")
        page.goto(f"{live_server.url}/account/api-key/")

        page.get_by_label("Mistral API key").fill("not-a-sandbox-key-123456")
        page.get_by_role("button", name="Check and save").click()

        expect(page.get_by_text("Mistral rejected this key")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/account/api-key/"))
        expect(page.get_by_role("heading", name="Saved key")).to_have_count(0)
        assert "not-a-sandbox-key-123456" not in page.content()
        assert not ApiCredential.objects.filter(user=charlie).exists()
        assert [r.path for r in sandbox.state.requests] == ["/v1/models"]
