"""Every page and dialog, as each role, on a desktop and a phone: axe-core finds no
serious or critical violation, and no page scrolls sideways at 390 px (issue 15).

One browser context per role walks its pages at both sizes, so the whole walk costs a
few page loads per page rather than a fresh context each."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from models_admin.models import BulkJob
from tests.browser.conftest import (
    PHONE,
    VIEWPORT,
    axe_violations,
    fine_tuned,
    sideways_scroll,
    sign_in,
    workspace,
)
from tests.conftest import BOB_KEY, CAROL_KEY

pytestmark = pytest.mark.browser


def base_model(sandbox, *args) -> dict:
    return next(c for c in workspace(sandbox, *args).models.values() if c["type"] == "base")


class Walk:
    """Checks the page as it is now, at both sizes, and collects what fails."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []

    def check(self, label: str, *, context: str = "document") -> None:
        for size in (VIEWPORT, PHONE):
            self.page.set_viewport_size(size)
            where = f"{label} @{size['width']}"
            self.problems += [f"{where}: {v}" for v in axe_violations(self.page, context=context)]
            if size is PHONE and (extra := sideways_scroll(self.page)) > 0:
                self.problems.append(f"{where}: the page scrolls {extra}px sideways")
        self.page.set_viewport_size(VIEWPORT)

    def visit(self, label: str, url: str) -> None:
        self.page.goto(url)
        self.check(label)

    def done(self) -> None:
        assert self.problems == [], "\n".join(self.problems)


def open_dialog(page: Page) -> None:
    expect(page.locator("#dialog")).to_be_visible()


def open_bulk_dialog(page: Page, card: dict) -> None:
    page.locator(f'tr[data-model-id="{card["id"]}"] input[name="ids"]').check()
    page.get_by_role("button", name="Apply to 1 selected").click()
    open_dialog(page)


def test_every_page_as_a_team_admin(page, live_server, alice, sandbox):
    walk = Walk(page)
    card = fine_tuned(sandbox)
    base = base_model(sandbox)
    other = next(
        c
        for c in workspace(sandbox).models.values()
        if c["type"] == "fine-tuned" and not c.get("archived") and c["id"] != card["id"]
    )
    url = live_server.url
    sign_in(page, live_server, alice)
    walk.check("model list")
    page.locator(f'tr[data-model-id="{card["id"]}"]').get_by_role("link", name="Delete").click()
    open_dialog(page)
    walk.check("row delete dialog")
    page.keyboard.press("Escape")
    open_bulk_dialog(page, card)
    walk.check("bulk dialog")
    page.keyboard.press("Escape")
    walk.visit("model detail", f"{url}/models/{card['id']}/")
    page.get_by_role("link", name="Delete…").click()
    open_dialog(page)
    walk.check("detail delete dialog")
    walk.visit("base model detail", f"{url}/models/{base['id']}/")
    walk.visit("edit page", f"{url}/models/{card['id']}/edit/")
    walk.visit("delete page", f"{url}/models/{card['id']}/delete/")
    page.get_by_role("button", name="Archive instead").click()
    walk.visit("team", f"{url}/team/")
    walk.visit("api key", f"{url}/account/api-key/")
    walk.visit("audit log", f"{url}/audit/")
    page.locator("#audit-table tbody a").first.click()
    page.wait_for_url("**/audit/*/")
    walk.check("audit entry")
    walk.visit("deleted models", f"{url}/audit/deleted-models/")
    page.goto(f"{url}/models/")
    open_bulk_dialog(page, other)
    page.get_by_role("button", name="Archive 1 model").click()
    expect(page.locator("#dialog")).to_contain_text("1 done")
    walk.check("bulk job finished")
    job = BulkJob.objects.exclude(state=BulkJob.State.DRAFT).get()
    walk.visit("bulk job page", f"{url}/bulk/{job.pk}/")
    walk.done()


def test_every_page_as_a_member(page, live_server, bob, sandbox):
    walk = Walk(page)
    card = fine_tuned(sandbox, BOB_KEY)
    url = live_server.url
    sign_in(page, live_server, bob)
    walk.check("model list")
    open_bulk_dialog(page, card)
    walk.check("bulk dialog")
    page.keyboard.press("Escape")
    walk.visit("model detail", f"{url}/models/{card['id']}/")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Name")).to_be_visible()
    walk.check("detail with the edit form")
    walk.visit("api key", f"{url}/account/api-key/")
    walk.done()


def test_every_page_as_an_auditor_and_signed_out(page, live_server, carol, sandbox):
    walk = Walk(page)
    card = fine_tuned(sandbox, CAROL_KEY)
    url = live_server.url
    walk.visit("sign in", f"{url}/accounts/login/")
    sign_in(page, live_server, carol)
    walk.check("model list")
    walk.visit("model detail", f"{url}/models/{card['id']}/")
    walk.visit("audit log", f"{url}/audit/")
    walk.visit("api key", f"{url}/account/api-key/")
    walk.visit("not found", f"{url}/models/ft:nope:nope:nope/")
    walk.done()
