"""A model's history and the audit log's search by name, in a real browser (issue 14):
a change made outside the dashboard (straight through the sandbox's API) and one made
through it both show on the model's page, newest first, each linking to its entry; the
audit log finds them by the model's name."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from models_admin import services
from models_admin.audit import Actor, Kind
from models_admin.models import AuditEntry
from tests.browser.conftest import fine_tuned, sign_in
from tests.conftest import ALICE_KEY
from tests.test_sync import rename, run_sync

pytestmark = pytest.mark.browser


@pytest.fixture
def changed(alice, sandbox) -> dict:
    """A model archived through the dashboard, then renamed outside it, both recorded."""
    card = fine_tuned(sandbox, ALICE_KEY)
    run_sync()  # the baseline
    services.model_archive(actor=Actor(user=alice), model_id=card["id"])
    rename(sandbox, card["id"], "renamed-in-the-console")
    run_sync()
    return card


def test_the_history_panel_lists_both_newest_first_and_links_to_entries(
    page, live_server, alice, changed
):
    outside = AuditEntry.objects.get(kind=Kind.OUTSIDE)
    attempt = AuditEntry.objects.get(kind=Kind.ATTEMPT)
    sign_in(page, live_server, alice, f"/models/{changed['id']}/")
    panel = page.locator("#model-history")
    expect(panel.get_by_role("heading", name="History")).to_be_visible()
    items = panel.locator("ol.history > li")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("outside")
    expect(items.nth(0)).to_contain_text("renamed-in-the-console")
    expect(items.nth(1)).to_contain_text("Archive model")
    expect(items.nth(1)).to_contain_text("alice")

    items.nth(0).get_by_role("link", name=f"#{outside.seq}").click()
    expect(page).to_have_url(f"{live_server.url}/audit/{outside.seq}/")
    expect(page.locator("main")).to_contain_text("Outside change")
    page.go_back()
    page.locator("#model-history").get_by_role("link", name=f"#{attempt.seq}").click()
    expect(page).to_have_url(f"{live_server.url}/audit/{attempt.seq}/")


def test_the_audit_log_finds_a_model_by_name(page, live_server, alice, changed):
    sign_in(page, live_server, alice, "/audit/")
    search = page.get_by_label("Search", exact=True)
    search.fill("RENAMED-IN-THE")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"q=RENAMED-IN-THE"))
    rows = page.locator("#audit-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(changed["id"])
    expect(rows.first).to_contain_text("outside")

    search.fill(changed["name"])
    search.press("Enter")
    expect(rows).to_have_count(1)  # the archive, recorded under the name it had then
    expect(rows.first).to_contain_text("Archive model")

    page.get_by_label("Source", exact=True).select_option("outside")
    expect(page.locator("#audit-table")).to_contain_text("Nothing matches")
