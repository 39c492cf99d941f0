"""Issue 15: keyboard alone, focus after every swap, busy feedback, and the bugs found
walking the dashboard (each test here failed before the fix).

Every flow is driven with the keyboard: a control is reached with focus() (what Tab
would do, without counting Tab presses) and pressed with Enter or Space; after each
swap, focus must be on a sensible control, never on <body>."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    PHONE,
    VIEWPORT,
    assert_focus_kept,
    fine_tuned,
    model_row,
    sign_in,
    workspace,
)
from tests.workers import worker_thread

pytestmark = pytest.mark.browser

# Records every control that was, at some moment, disabled and aria-busy (a request's
# busy state lasts a few milliseconds on 127.0.0.1: observe it, never race it).
WATCH_BUSY = """window.__busy = [];
new MutationObserver(records => records.forEach(r => {
  const el = r.target;
  if (el.getAttribute && el.getAttribute("aria-busy") === "true"
      && (el.disabled || el.getAttribute("aria-disabled") === "true"))
    window.__busy.push((el.getAttribute("aria-label") || el.textContent).trim());
})).observe(document.body, {subtree: true, attributes: true,
  attributeFilter: ["aria-busy", "disabled", "aria-disabled"]});"""


def watch_busy(page: Page) -> None:
    page.evaluate(WATCH_BUSY)


def busy_controls(page: Page) -> list[str]:
    return list(dict.fromkeys(page.evaluate("window.__busy")))


def press(page: Page, locator, key: str = "Enter") -> None:
    locator.focus()
    page.keyboard.press(key)


def focused_name(page: Page) -> str:
    return str(
        page.evaluate(
            "(document.activeElement.getAttribute('aria-label') || document.activeElement.textContent).trim()"
        )
    )


class TestRows:
    def test_archive_then_unarchive_from_a_row(self, page, live_server, alice, sandbox):
        card = fine_tuned(sandbox, name="sql-assistant-v7")
        page.clock.install()  # time flows as usual, and can be jumped ahead
        sign_in(page, live_server, alice)
        watch_busy(page)
        row = model_row(page, card["id"])

        press(page, row.get_by_role("button", name="Archive sql-assistant-v7"))

        unarchive = row.get_by_role("button", name="Unarchive sql-assistant-v7")
        expect(unarchive).to_be_focused()
        assert workspace(sandbox).get(card["id"])["archived"] is True
        # The message names the model, and stays (it sits in the flow, covering nothing).
        expect(page.locator("#alerts")).to_contain_text("Archived sql-assistant-v7.")
        page.keyboard.press("Enter")
        expect(row.get_by_role("button", name="Archive sql-assistant-v7")).to_be_focused()
        assert workspace(sandbox).get(card["id"])["archived"] is False
        assert busy_controls(page) == ["Archive sql-assistant-v7", "Unarchive sql-assistant-v7"]
        # Success messages stay until dismissed (they used to vanish after 6 s).
        page.clock.fast_forward(60_000)
        expect(page.locator("#alerts .alert-success")).to_have_text(
            re.compile("Unarchived sql-assistant-v7.")
        )
        assert page.evaluate("document.getElementById('live').textContent").strip()

    def test_rename_from_the_list(self, page, live_server, alice, sandbox):
        card = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        row = model_row(page, card["id"])

        press(page, row.get_by_role("link", name="Rename sql-assistant-v7"))

        name = row.get_by_label("New name for")
        expect(name).to_be_focused()
        expect(name).to_have_value("sql-assistant-v7")
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type("sql-assistant-v8")
        page.keyboard.press("Enter")

        rename = row.get_by_role("link", name="Rename sql-assistant-v8")
        expect(rename).to_be_focused()
        assert workspace(sandbox).get(card["id"])["name"] == "sql-assistant-v8"
        assert workspace(sandbox).get(card["id"])["description"] == card["description"]
        expect(page.locator("#alerts")).to_contain_text("Renamed to sql-assistant-v8.")

        # Cancel puts the row back as it was, focus on its Rename link.
        press(page, rename)
        expect(row.get_by_label("New name for")).to_be_focused()
        press(page, row.get_by_role("link", name="Cancel"))
        expect(row.get_by_role("link", name="Rename sql-assistant-v8")).to_be_focused()

    def test_a_rename_from_the_list_never_overwrites_a_change_made_meanwhile(
        self, page, live_server, alice, sandbox
    ):
        card = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        row = model_row(page, card["id"])
        press(page, row.get_by_role("link", name="Rename sql-assistant-v7"))
        expect(row.get_by_label("New name for")).to_be_focused()
        workspace(sandbox).put(dict(workspace(sandbox).get(card["id"]), name="renamed-elsewhere"))

        row.get_by_label("New name for").fill("mine")
        page.keyboard.press("Enter")

        expect(row).to_contain_text("changed")
        expect(row.get_by_label("New name for")).to_have_value("renamed-elsewhere")
        assert workspace(sandbox).get(card["id"])["name"] == "renamed-elsewhere"
        assert_focus_kept(page)

    def test_delete_through_the_dialog_and_the_count_follows(
        self, page, live_server, alice, sandbox
    ):
        card = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        count = page.locator("#model-count")
        before = int(count.inner_text().split()[0])
        dialog = page.locator("#dialog")

        press(page, model_row(page, card["id"]).get_by_role("link", name="Delete sql-assistant-v7"))
        confirm = dialog.get_by_label("Type the model id to confirm")
        expect(confirm).to_be_focused()
        page.keyboard.type("ft:mistyped")
        page.keyboard.press("Tab")
        page.keyboard.type("retired")
        page.keyboard.press("Tab")
        expect(dialog.get_by_role("button", name="Delete for good")).to_be_focused()
        page.keyboard.press("Enter")

        # The summary stays (the id to type, "Archive instead"); focus goes to the field.
        expect(dialog).to_contain_text("That is not this model's id")
        expect(dialog.locator("code.target")).to_have_text(card["id"])
        expect(dialog.get_by_role("button", name="Archive instead")).to_be_visible()
        expect(confirm).to_be_focused()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type(card["id"])
        press(page, dialog.get_by_role("button", name="Delete for good"))

        expect(dialog).to_be_hidden()
        expect(model_row(page, card["id"])).to_have_count(0)
        expect(count).to_contain_text(f"{before - 1} of {before - 1}")
        expect(count).to_be_focused()
        expect(page.locator("#alerts")).to_contain_text("Deleted sql-assistant-v7.")


class TestDetailPage:
    def test_rename_from_the_page(self, page, live_server, alice, sandbox):
        card = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice, f"/models/{card['id']}/")
        watch_busy(page)

        press(page, page.get_by_role("link", name="Edit"))

        name = page.get_by_label("Name:", exact=True)
        expect(name).to_be_focused()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type("sql-assistant-v8")
        page.keyboard.press("Enter")

        expect(page.locator("#model-detail h1")).to_have_text("sql-assistant-v8")
        expect(page.get_by_role("link", name="Edit")).to_be_focused()
        assert busy_controls(page) == ["Save"]
        expect(page.locator("#alerts")).to_contain_text("Saved sql-assistant-v8.")

    def test_cancel_on_the_delete_page_goes_back(self, page, live_server, alice, sandbox):
        card = fine_tuned(sandbox)
        sign_in(page, live_server, alice, f"/models/{card['id']}/delete/")
        page.get_by_role("link", name="Cancel").click()
        expect(page).to_have_url(f"{live_server.url}/models/{card['id']}/")

    def test_an_error_stays_clear_of_the_page_s_controls(self, page, live_server, alice, sandbox):
        card = fine_tuned(sandbox)
        sign_in(page, live_server, alice, f"/models/{card['id']}/")
        sandbox.state.faults.set(fail_status=500, fail_times=100, match="POST .*archive")

        press(page, page.get_by_role("button", name="Archive", exact=True))

        expect(page.locator("#alerts .alert-error")).to_be_visible()
        # Nothing swapped: focus went back to the button.
        expect(page.get_by_role("button", name="Archive", exact=True)).to_be_focused()
        for size in (VIEWPORT, PHONE):  # the menu included, on a phone
            page.set_viewport_size(size)
            assert page.evaluate(COVERED) == [], f"covered at {size['width']} px"


# The page's controls that an alert box overlaps (the alert's own button aside).
COVERED = """() => {
  const boxes = [...document.querySelectorAll("#alerts .alert")].map(a => a.getBoundingClientRect());
  return [...document.querySelectorAll("a, button, input, select, textarea")]
    .filter(el => !el.closest("#alerts") && el.getClientRects().length)
    .filter(el => { const r = el.getBoundingClientRect();
      return boxes.some(b => r.left < b.right && b.left < r.right && r.top < b.bottom && b.top < r.bottom); })
    .map(el => el.textContent.trim()); }"""


class TestAuditor:
    def test_an_auditor_is_told_why_there_are_no_actions(self, page, live_server, carol, sandbox):
        from tests.conftest import CAROL_KEY

        card = fine_tuned(sandbox, CAROL_KEY)
        sign_in(page, live_server, carol, f"/models/{card['id']}/")
        expect(page.locator("#model-detail .note")).to_contain_text("Your role can only look")


class TestListAndKey:
    def test_clear_the_filters_clears_search_too(self, page, live_server, alice, sandbox):
        sign_in(page, live_server, alice, "/models/?q=nothing-matches-this")
        expect(page.get_by_role("heading", name="Nothing matches")).to_be_visible()

        page.get_by_role("link", name="Clear the filters").click()

        expect(page.get_by_role("searchbox", name="Search")).to_have_value("")
        expect(page.locator("tr[data-model-id]").first).to_be_visible()
        # The next filter change does not bring the old text back.
        page.get_by_label("Type", exact=True).select_option("fine-tuned")
        expect(page).to_have_url(re.compile(r"type=fine-tuned"))
        expect(page.locator("tr[data-model-id]").first).to_be_visible()
        assert "q=nothing" not in page.url

    def test_the_loading_indicator_announces(self, page, live_server, alice, sandbox):
        sign_in(page, live_server, alice)
        sandbox.state.faults.set(latency_ms=300)
        page.get_by_role("link", name="Refresh from Mistral").click()
        expect(page.locator("#live")).to_have_text("Loading…")
        expect(page.locator("#live")).to_contain_text(" of ")

    def test_an_invalid_key_s_error_is_announced(self, page, live_server, charlie, sandbox):
        sign_in(page, live_server, charlie, "/account/api-key/")
        field = page.get_by_label("Mistral API key")
        field.fill("not a key")
        press(page, page.get_by_role("button", name="Check and save"))

        field = page.get_by_label("Mistral API key")
        expect(field).to_be_focused()
        expect(field).to_have_attribute("aria-invalid", "true")
        described = field.get_attribute("aria-describedby") or ""
        texts = [page.locator(f"[id='{i}']").inner_text() for i in described.split()]
        assert any("no spaces" in t for t in texts), texts


def unarchived_named(sandbox, count: int) -> list[dict]:
    found = [
        c
        for c in workspace(sandbox).models.values()
        if c["type"] == "fine-tuned" and not c["archived"] and c.get("name")
    ]
    found.sort(key=lambda c: c["created"], reverse=True)
    return found[:count]


class TestBulk:
    @pytest.fixture(autouse=True)
    def _task_worker(self, live_server):
        with worker_thread():
            yield

    def test_a_bulk_archive_with_the_keyboard_keeps_focus_and_the_filters(
        self, page, live_server, alice, sandbox, settings
    ):
        settings.BULK_CONCURRENCY = 1
        picked = unarchived_named(sandbox, 3)
        sign_in(page, live_server, alice, "/models/?type=fine-tuned")
        for card in picked:
            press(
                page,
                page.get_by_role("checkbox", name=f"Select {card['name']}", exact=True),
                "Space",
            )
        dialog = page.locator("#dialog")
        title = dialog.locator("#dialog-title")
        press(page, page.get_by_role("button", name="Apply to 3 selected"))

        # Focus on the confirmation, not on "× Close" (Enter would close the dialog).
        expect(dialog.get_by_role("button", name="Archive 3 models")).to_be_focused()
        sandbox.state.faults.set(latency_ms=250)  # a job that runs over several polls
        page.evaluate(
            """window.__said = []; const live = document.getElementById("live");
            new MutationObserver(() => window.__said.push(live.textContent))
              .observe(live, {childList: true, characterData: true, subtree: true});"""
        )
        page.keyboard.press("Enter")
        expect(title).to_contain_text(re.compile(r"Archive: (\d of )?3 done"))
        close = dialog.get_by_role("button", name="Close")
        expect(close).to_be_focused()

        expect(title).to_have_text("Archive: 3 done", timeout=10_000)
        # The polls swapped the job's box every second; focus stayed on its button.
        expect(close).to_be_focused()
        # Progress went through the one polite live region.
        assert "Archive: 3 done" in page.evaluate("window.__said")
        sandbox.state.faults.clear()
        assert all(workspace(sandbox).get(c["id"])["archived"] for c in picked)

        press(page, dialog.get_by_role("link", name="Back to the models"))
        expect(dialog).to_be_hidden()
        assert "type=fine-tuned" in page.url
        expect(page.get_by_label("Type", exact=True)).to_have_value("fine-tuned")
        expect(page.locator("#model-count")).to_be_focused()

    def test_without_javascript_cancel_and_close_lead_back_to_the_filtered_list(
        self, js_off_page, live_server, alice, sandbox
    ):
        page = js_off_page
        card = unarchived_named(sandbox, 1)[0]
        sign_in(page, live_server, alice, "/models/?type=fine-tuned")
        page.get_by_role("checkbox", name=f"Select {card['name']}", exact=True).check()
        page.get_by_role("button", name="Apply to the selected").click()
        expect(page).to_have_url(re.compile(r"/bulk/[0-9a-f-]{36}/"))
        expect(page.get_by_role("heading", level=1)).to_have_count(1)
        job_url = page.url

        page.get_by_role("link", name="Cancel").click()
        expect(page).to_have_url(f"{live_server.url}/models/?type=fine-tuned")
        page.goto(job_url)
        page.get_by_role("link", name="Close").click()
        expect(page).to_have_url(f"{live_server.url}/models/?type=fine-tuned")
        assert workspace(sandbox).get(card["id"])["archived"] is False
