"""Alice (team admin) works through her models in a real browser: list, search, detail,
edit, archive, delete, from the mouse and from the keyboard."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    bulk_fine_tuned,
    fine_tuned,
    login,
    mark_page,
    model_row,
    page_is_marked,
    sign_in,
    workspace,
)

pytestmark = pytest.mark.browser


def open_list(page: Page, live_server, query: str = "") -> None:
    page.goto(f"{live_server.url}/models/{query}")
    expect(page.locator("#model-table")).to_be_visible()


def dialog_has_focus(page: Page) -> bool:
    return page.evaluate("document.getElementById('dialog').contains(document.activeElement)")


def tab_to(page: Page, name: str, *, limit: int = 12) -> None:
    """Press Tab until the field called ``name`` has the focus, as a keyboard user would."""
    for _ in range(limit):
        if page.evaluate("document.activeElement && document.activeElement.name") == name:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached the {name!r} field")


class TestTheWholePath:
    def test_sign_in_search_open_edit_archive_unarchive_and_delete(
        self, page, live_server, alice, sandbox, browser_log
    ):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        model_id = target["id"]

        login(page, live_server, "alice")
        expect(page).to_have_url(re.compile(r"/models/$"))
        mark_page(page)
        page.get_by_role("searchbox", name="Search").fill("sql-assistant")
        expect(page).to_have_url(re.compile(r"[?&]q=sql-assistant"))
        expect(model_row(page, model_id)).to_be_visible()
        assert page_is_marked(page), "the search reloaded the whole page"
        model_row(page, model_id).get_by_role("link", name="sql-assistant-v7", exact=True).click()
        expect(page).to_have_url(re.compile(re.escape(f"/models/{model_id}/") + "$"))
        expect(page.locator("#model-id")).to_have_text(model_id)

        # Edit: the form replaces the fields in place and the save comes back in place.
        mark_page(page)
        fields = page.locator("#model-fields")
        page.get_by_role("link", name="Edit").click()
        fields.get_by_label("Name").fill("sql-assistant-v8")
        fields.get_by_label("Description").fill("Renamed from the browser test")
        page.get_by_role("button", name="Save").click()
        expect(fields).to_contain_text("sql-assistant-v8")
        expect(fields).to_contain_text("Renamed from the browser test")
        expect(page.locator("#alerts")).to_contain_text("Saved sql-assistant-v8.")
        assert page_is_marked(page), "saving reloaded the whole page"
        card = workspace(sandbox).get(model_id)
        assert card["name"] == "sql-assistant-v8"
        assert card["description"] == "Renamed from the browser test"

        # Archive, then unarchive: #model-detail swaps, the badge follows.
        detail = page.locator("#model-detail")
        page.get_by_role("button", name="Archive", exact=True).click()
        expect(detail.locator(".badge.archived")).to_have_text("Archived")
        assert workspace(sandbox).get(model_id)["archived"] is True
        page.get_by_role("button", name="Unarchive").click()
        expect(detail.locator(".badge.archived")).to_have_count(0)
        expect(page.get_by_role("button", name="Archive", exact=True)).to_be_visible()
        assert workspace(sandbox).get(model_id)["archived"] is False
        assert page_is_marked(page)

        # Delete: a wrong id keeps the model, the right one deletes it.
        page.get_by_role("link", name="Delete…").click()
        dialog = page.locator("#dialog")
        expect(dialog).to_be_visible()
        assert dialog_has_focus(page)
        dialog.get_by_label("Type the model id to confirm").fill("ft:not-this-one")
        dialog.get_by_label("Reason (kept in the audit log)").fill("replaced by v9")
        dialog.get_by_role("button", name="Delete for good").click()
        expect(dialog).to_contain_text("That is not this model's id")
        assert workspace(sandbox).get(model_id) is not None
        dialog.get_by_label("Type the model id to confirm").fill(model_id)
        dialog.get_by_role("button", name="Delete for good").click()

        expect(page.locator("#alerts")).to_contain_text("Deleted sql-assistant-v8.")
        assert workspace(sandbox).get(model_id) is None
        # Where the browser lands is TestDetailPage's business (a known bug); the list,
        # loaded afresh, no longer has the model.
        open_list(page, live_server)
        expect(page.locator("tr[data-model-id]").first).to_be_visible()
        expect(model_row(page, model_id)).to_have_count(0)
        # No failed request, no CSP violation, nothing else logged as an error.
        assert browser_log.console_errors == []


class TestDetailPage:
    def test_deleting_ends_on_the_list(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice, f"/models/{target['id']}/")
        page.get_by_role("link", name="Delete…").click()
        dialog = page.locator("#dialog")
        dialog.get_by_label("Type the model id to confirm").fill(target["id"])
        dialog.get_by_label("Reason (kept in the audit log)").fill("replaced by v9")

        dialog.get_by_role("button", name="Delete for good").click()

        # The message shows wherever the browser ends up; by then it has arrived.
        expect(page.locator("#alerts")).to_contain_text(
            f"Deleted {target.get('name') or target['id']}."
        )
        assert page.url == f"{live_server.url}/models/"
        assert page.locator("#model-id").count() == 0

    def test_the_heading_follows_a_rename(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice, f"/models/{target['id']}/")
        fields = page.locator("#model-fields")
        page.get_by_role("link", name="Edit").click()
        fields.get_by_label("Name").fill("sql-assistant-v8")

        page.get_by_role("button", name="Save").click()

        expect(fields).to_contain_text("sql-assistant-v8")
        assert page.locator("#model-detail h1").inner_text() == "sql-assistant-v8"
        assert page.title().startswith("sql-assistant-v8")

    def test_cancel_puts_the_fields_back(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice, f"/models/{target['id']}/")
        fields = page.locator("#model-fields")
        page.get_by_role("link", name="Edit").click()
        fields.get_by_label("Name").fill("never-saved")

        fields.get_by_role("link", name="Cancel").click()

        expect(fields.get_by_role("link", name="Edit")).to_be_visible()
        expect(fields).to_contain_text("sql-assistant-v7")
        expect(page.locator("#model-fields")).to_have_count(1)
        assert workspace(sandbox).get(target["id"])["name"] == "sql-assistant-v7"

    def test_copy_id_copies_the_model_id(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        sign_in(page, live_server, alice, f"/models/{target['id']}/")
        # Its accessible name is its label ("Copy id"), which becomes "Copied" once clicked.
        expect(page.get_by_role("button", name="Copy id", exact=True)).to_be_visible()
        button = page.locator(".id-line button.copy")

        button.click()

        expect(button).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == target["id"]


class TestSearch:
    def test_the_table_swaps_and_the_url_follows(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        other = fine_tuned(sandbox, name="support-rewriter-v5")
        sign_in(page, live_server, alice)
        mark_page(page)

        page.get_by_role("searchbox", name="Search").fill("sql-assistant-v7")

        expect(page).to_have_url(re.compile(r"\?(.*&)?q=sql-assistant-v7"))
        expect(model_row(page, target["id"])).to_be_visible()
        expect(model_row(page, other["id"])).to_have_count(0)
        expect(page.locator("#model-count")).to_contain_text("1 of")
        assert page_is_marked(page)

    def test_back_restores_the_previous_state(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        other = fine_tuned(sandbox, name="support-rewriter-v5")
        sign_in(page, live_server, alice)
        page.get_by_role("searchbox", name="Search").fill("sql-assistant-v7")
        expect(model_row(page, other["id"])).to_have_count(0)

        page.go_back()

        expect(page).to_have_url(re.compile(r"/models/$"))
        expect(model_row(page, other["id"])).to_be_visible()
        expect(model_row(page, target["id"])).to_be_visible()
        # The whole page must be back, not just the table: header, search box, filters.
        assert page.get_by_role("navigation", name="Main").count() == 1
        assert page.get_by_role("searchbox", name="Search").input_value() == ""

    def test_back_from_a_model_shows_the_searched_list(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        search = page.get_by_role("searchbox", name="Search")
        search.fill("sql-assistant-v7")
        expect(page).to_have_url(re.compile(r"[?&]q=sql-assistant-v7"))
        search.blur()  # leaving the field must not send the search again
        model_row(page, target["id"]).get_by_role(
            "link", name="sql-assistant-v7", exact=True
        ).click()
        expect(page.locator("#model-id")).to_have_text(target["id"])

        page.go_back()

        expect(model_row(page, target["id"])).to_be_visible()
        assert page.get_by_role("navigation", name="Main").count() == 1
        assert page.get_by_role("searchbox", name="Search").input_value() == "sql-assistant-v7"

    def test_filters_swap_the_table(self, page, live_server, alice, sandbox):
        sign_in(page, live_server, alice)

        page.get_by_label("Type", exact=True).select_option("fine-tuned")
        page.get_by_label("Archived", exact=True).select_option("yes")

        expect(page).to_have_url(re.compile(r"type=fine-tuned"))
        expect(page).to_have_url(re.compile(r"archived=yes"))
        archived = [c["id"] for c in workspace(sandbox).models.values() if c.get("archived")]
        rows = page.locator("tr[data-model-id]")
        expect(rows).to_have_count(len(archived))
        expect(rows.locator(".badge.archived")).to_have_count(len(archived))

    def test_the_loading_indicator_shows_while_mistral_answers(
        self, page, live_server, alice, sandbox
    ):
        sign_in(page, live_server, alice)
        indicator = page.locator("#loading")
        expect(indicator).not_to_have_class(re.compile(r"htmx-request"))
        sandbox.state.faults.set(latency_ms=400)

        page.get_by_role("link", name="Refresh from Mistral").click()

        expect(indicator).to_have_class(re.compile(r"htmx-request"))
        expect(indicator).not_to_have_class(re.compile(r"htmx-request"))
        expect(page.locator("tr[data-model-id]").first).to_be_visible()


class TestFromTheList:
    def test_archive_a_row_in_place(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        mark_page(page)

        model_row(page, target["id"]).get_by_role("button", name="Archive sql-assistant-v7").click()

        expect(model_row(page, target["id"]).locator(".badge.archived")).to_have_text("Archived")
        expect(
            model_row(page, target["id"]).get_by_role("button", name="Unarchive sql-assistant-v7")
        ).to_be_visible()
        expect(page.locator("#alerts")).to_contain_text("Archived sql-assistant-v7.")
        assert page_is_marked(page)
        assert workspace(sandbox).get(target["id"])["archived"] is True

    def test_delete_a_row_through_the_dialog(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        mark_page(page)

        model_row(page, target["id"]).get_by_role("link", name="Delete sql-assistant-v7").click()
        dialog = page.locator("#dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text(target["id"])
        dialog.get_by_label("Type the model id to confirm").fill(target["id"])
        dialog.get_by_label("Reason (kept in the audit log)").fill("no longer used")
        dialog.get_by_role("button", name="Delete for good").click()

        expect(dialog).to_be_hidden()
        expect(model_row(page, target["id"])).to_have_count(0)
        expect(page.locator("#alerts")).to_contain_text(
            f"Deleted {target.get('name') or target['id']}."
        )
        assert page_is_marked(page)
        assert workspace(sandbox).get(target["id"]) is None

    def test_cancel_closes_the_dialog_and_keeps_the_model(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        model_row(page, target["id"]).get_by_role("link", name="Delete sql-assistant-v7").click()
        expect(page.locator("#dialog")).to_be_visible()

        page.locator("#dialog").get_by_role("button", name="Cancel").click()

        expect(page.locator("#dialog")).to_be_hidden()
        expect(model_row(page, target["id"])).to_be_visible()
        assert workspace(sandbox).get(target["id"]) is not None

    def test_archive_instead_closes_the_dialog_and_swaps_the_row(
        self, page, live_server, alice, sandbox
    ):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        model_row(page, target["id"]).get_by_role("link", name="Delete sql-assistant-v7").click()
        dialog = page.locator("#dialog")
        expect(dialog).to_be_visible()

        dialog.get_by_role("button", name="Archive instead").click()

        expect(page.locator("#alerts")).to_contain_text("Archived sql-assistant-v7.")
        assert workspace(sandbox).get(target["id"])["archived"] is True
        expect(dialog).to_be_hidden()
        expect(model_row(page, target["id"]).locator(".badge.archived")).to_have_text("Archived")


class TestKeyboard:
    def test_the_delete_dialog_works_from_the_keyboard_alone(
        self, page, live_server, alice, sandbox
    ):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        delete_link = model_row(page, target["id"]).get_by_role(
            "link", name="Delete sql-assistant-v7"
        )
        dialog = page.locator("#dialog")

        # Enter on the focused link opens the dialog, with the focus inside it.
        delete_link.focus()
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        assert dialog_has_focus(page)
        tab_to(page, "confirm_id")
        page.keyboard.type(target["id"])
        page.keyboard.press("Tab")
        page.keyboard.type("typed with the keyboard")
        # Escape closes it without deleting, and the focus goes back to the link.
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(delete_link).to_be_focused()
        assert workspace(sandbox).get(target["id"]) is not None
        # Again, this time to the end: Tab to "Delete for good" (Enter in the reason
        # textarea would be a new line) and press Enter.
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        tab_to(page, "confirm_id")
        expect(dialog.get_by_label("Type the model id to confirm")).to_have_value("")
        page.keyboard.type(target["id"])
        page.keyboard.press("Tab")
        page.keyboard.type("typed with the keyboard")
        page.keyboard.press("Tab")
        expect(dialog.get_by_role("button", name="Delete for good")).to_be_focused()
        page.keyboard.press("Enter")

        expect(dialog).to_be_hidden()
        expect(model_row(page, target["id"])).to_have_count(0)
        assert workspace(sandbox).get(target["id"]) is None


class TestBigWorkspace:
    @pytest.fixture
    def many(self, sandbox):
        return bulk_fine_tuned(sandbox, 120)

    def test_page_two_through_the_pagination_link(self, page, live_server, alice, many):
        sign_in(page, live_server, alice)
        expect(page.locator("#model-count")).to_contain_text("page 1 of")
        first_page = page.locator("tr[data-model-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.modelId)"
        )
        mark_page(page)

        page.get_by_role("link", name="Next →").click()

        expect(page).to_have_url(re.compile(r"[?&]page=2"))
        expect(page.locator("#model-count")).to_contain_text("page 2 of")
        rows = page.locator("tr[data-model-id]")
        expect(rows).to_have_count(50)
        second_page = rows.evaluate_all("rows => rows.map(r => r.dataset.modelId)")
        assert not set(first_page) & set(second_page)
        expect(page.get_by_role("link", name="← Previous")).to_be_visible()
        assert page_is_marked(page)

    def test_sorting_by_name_through_the_column_header(self, page, live_server, alice, many):
        sign_in(page, live_server, alice)

        page.get_by_role("link", name="Name and id").click()

        expect(page).to_have_url(re.compile(r"[?&]sort=name"))
        expect(page.get_by_role("link", name="Name and id ↑")).to_be_visible()
        names = page.locator("tr[data-model-id] td.name > a").all_inner_texts()
        assert len(names) == 50
        assert names == sorted(names, key=str.lower)

        page.get_by_role("link", name="Name and id ↑").click()

        expect(page).to_have_url(re.compile(r"[?&]sort=-name"))
        expect(page.get_by_role("link", name="Name and id ↓")).to_be_visible()
        names = page.locator("tr[data-model-id] td.name > a").all_inner_texts()
        assert names == sorted(names, key=str.lower, reverse=True)
