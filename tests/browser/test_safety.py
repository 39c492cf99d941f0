"""What comes from Mistral is shown as text, failures upstream are readable messages,
and every action still works with JavaScript turned off."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import fine_tuned, login, model_row, sign_in, workspace

pytestmark = pytest.mark.browser

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_DESCRIPTION = "<script>window.__xss = true</script><b onmouseover=alert(2)>bold</b>"


def assert_nothing_ran(page: Page, browser_log) -> None:
    assert browser_log.dialogs == []
    assert page.evaluate("window.__xss === undefined")
    # The CSP would block inline handlers anyway, so the telling check is that the
    # markup was never parsed into elements: it is text.
    assert page.locator("img[src='x'], main script, b[onmouseover]").count() == 0


class TestUpstreamTextIsText:
    @pytest.fixture
    def hostile(self, sandbox) -> dict:
        card = dict(
            fine_tuned(sandbox, name="sql-assistant-v7"),
            name=HOSTILE_NAME,
            description=HOSTILE_DESCRIPTION,
        )
        workspace(sandbox).put(card)
        return card

    def test_on_the_detail_page_and_in_its_edit_form(
        self, page, live_server, alice, hostile, browser_log
    ):
        sign_in(page, live_server, alice, f"/models/{hostile['id']}/")

        expect(page.locator("#model-detail h1")).to_have_text(HOSTILE_NAME)
        expect(page.locator("#model-fields .description")).to_have_text(HOSTILE_DESCRIPTION)
        assert page.title().startswith(HOSTILE_NAME)
        page.get_by_role("link", name="Edit").click()
        expect(page.locator("#model-fields").get_by_label("Name")).to_have_value(HOSTILE_NAME)
        assert_nothing_ran(page, browser_log)

    def test_in_the_list_its_delete_dialog_and_alerts(
        self, page, live_server, alice, hostile, browser_log
    ):
        sign_in(page, live_server, alice)
        link = model_row(page, hostile["id"]).get_by_role("link", name=HOSTILE_NAME, exact=True)
        expect(link).to_have_text(HOSTILE_NAME)

        model_row(page, hostile["id"]).get_by_role("link", name=f"Delete {HOSTILE_NAME}").click()
        expect(page.locator("#dialog li strong")).to_have_text(HOSTILE_NAME)
        page.locator("#dialog").get_by_role("button", name="Cancel").click()
        model_row(page, hostile["id"]).get_by_role("button", name=f"Archive {HOSTILE_NAME}").click()

        expect(page.locator("#alerts")).to_contain_text(f"Archived {HOSTILE_NAME}.")
        assert_nothing_ran(page, browser_log)

    def test_a_hostile_search_is_text_too(self, page, live_server, alice, sandbox, browser_log):
        sign_in(page, live_server, alice)

        page.get_by_role("searchbox", name="Search").fill('"><img src=x onerror=alert(3)>')

        expect(page.get_by_role("heading", name="Nothing matches")).to_be_visible()
        page.reload()
        expect(page.get_by_role("searchbox", name="Search")).to_have_value(
            '"><img src=x onerror=alert(3)>'
        )
        assert_nothing_ran(page, browser_log)


class TestUpstreamFailures:
    def test_a_503_on_archive_is_an_alert_and_the_page_stays_usable(
        self, page, live_server, alice, sandbox
    ):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        sandbox.state.faults.set(fail_status=503, fail_times=10, match="POST")
        archive = model_row(page, target["id"]).get_by_role(
            "button", name="Archive sql-assistant-v7"
        )

        archive.click()

        alert = page.locator("#alerts .alert-error")
        expect(alert).to_contain_text("HTTP 503")
        expect(model_row(page, target["id"]).locator(".badge.archived")).to_have_count(0)
        assert workspace(sandbox).get(target["id"])["archived"] is False
        # Still usable: the alert goes away, and once Mistral is back the same button works.
        alert.get_by_role("button", name="Dismiss this message").click()
        expect(alert).to_have_count(0)
        sandbox.state.faults.clear()
        archive.click()
        expect(model_row(page, target["id"]).locator(".badge.archived")).to_have_text("Archived")

    def test_a_timeout_on_archive_is_an_alert(self, page, live_server, alice, sandbox):
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        # Far longer than the suite's 0.5 s MISTRAL_API_TIMEOUT (a loaded machine must not
        # see the answer arrive first), for every attempt, and for
        # reading the model back too: nothing can say whether it was archived.
        sandbox.state.faults.set(hang_s=3, hang_times=20, match=target["id"])

        model_row(page, target["id"]).get_by_role("button", name="Archive sql-assistant-v7").click()

        expect(page.locator("#alerts .alert-error")).to_contain_text("did not answer in time")
        expect(model_row(page, target["id"]).locator(".badge.archived")).to_have_count(0)
        expect(page.get_by_role("searchbox", name="Search")).to_be_enabled()

    def test_a_503_on_the_list_says_so_and_try_again_works(self, page, live_server, alice, sandbox):
        sandbox.state.faults.set(fail_status=503, fail_times=10)
        sign_in(page, live_server, alice)
        expect(page.get_by_role("heading", name="The models could not be loaded")).to_be_visible()
        expect(page.locator("#model-table")).to_contain_text("HTTP 503")
        sandbox.state.faults.clear()

        page.get_by_role("link", name="Try again").click()

        expect(page.locator("tr[data-model-id]").first).to_be_visible()


class TestWithoutJavaScript:
    def test_sign_in_and_archive_with_a_plain_form_post(
        self, js_off_page, live_server, alice, sandbox
    ):
        page = js_off_page
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        login(page, live_server, "alice")
        expect(page).to_have_url(re.compile(r"/models/$"))

        model_row(page, target["id"]).get_by_role("button", name="Archive sql-assistant-v7").click()

        expect(page).to_have_url(re.compile(r"/models/$"))
        expect(page.locator("#alerts")).to_contain_text("Archived sql-assistant-v7.")
        expect(model_row(page, target["id"]).locator(".badge.archived")).to_have_text("Archived")
        assert workspace(sandbox).get(target["id"])["archived"] is True

    def test_delete_through_the_confirmation_page(self, js_off_page, live_server, alice, sandbox):
        page = js_off_page
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        model_row(page, target["id"]).get_by_role("link", name="Delete sql-assistant-v7").click()
        expect(page).to_have_url(re.compile(re.escape(f"/models/{target['id']}/row/delete/")))
        expect(page.get_by_role("heading", name="Delete this model?")).to_be_visible()
        page.get_by_label("Type the model id to confirm").fill("ft:wrong")
        page.get_by_label("Reason (kept in the audit log)").fill("retired")
        page.get_by_role("button", name="Delete for good").click()
        expect(page.get_by_text("That is not this model's id")).to_be_visible()
        assert workspace(sandbox).get(target["id"]) is not None

        page.get_by_label("Type the model id to confirm").fill(target["id"])
        page.get_by_label("Reason (kept in the audit log)").fill("retired")
        page.get_by_role("button", name="Delete for good").click()

        expect(page).to_have_url(re.compile(r"/models/$"))
        expect(page.locator("#alerts")).to_contain_text(
            f"Deleted {target.get('name') or target['id']}."
        )
        expect(model_row(page, target["id"])).to_have_count(0)
        assert workspace(sandbox).get(target["id"]) is None

    def test_edit_through_the_edit_page(self, js_off_page, live_server, alice, sandbox):
        page = js_off_page
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice, f"/models/{target['id']}/")
        page.get_by_role("link", name="Edit").click()
        expect(page).to_have_url(re.compile(re.escape(f"/models/{target['id']}/edit/")))
        page.get_by_label("Name").fill("sql-assistant-v8")

        page.get_by_role("button", name="Save").click()

        expect(page).to_have_url(re.compile(re.escape(f"/models/{target['id']}/") + "$"))
        expect(page.locator("#alerts")).to_contain_text("Saved sql-assistant-v8.")
        expect(page.locator("#model-detail h1")).to_have_text("sql-assistant-v8")
        assert workspace(sandbox).get(target["id"])["name"] == "sql-assistant-v8"

    def test_search_with_the_apply_button(self, js_off_page, live_server, alice, sandbox):
        page = js_off_page
        target = fine_tuned(sandbox, name="sql-assistant-v7")
        sign_in(page, live_server, alice)
        page.get_by_role("searchbox", name="Search").fill("sql-assistant-v7")

        page.get_by_role("button", name="Apply", exact=True).click()

        expect(page).to_have_url(re.compile(r"[?&]q=sql-assistant-v7"))
        rows = page.locator("tr[data-model-id]")
        expect(rows).to_have_count(1)
        expect(model_row(page, target["id"])).to_be_visible()


class TestFailedRequests:
    def test_a_failed_htmx_request_is_an_alert_made_from_the_pages_template(
        self, page, live_server, alice, sandbox
    ):
        sign_in(page, live_server, alice)
        expect(page.locator("#model-table")).to_be_visible()

        page.evaluate("htmx.ajax('GET', '/no-such-page/', '#dialog')")

        alert = page.locator("#alerts .alert-error")
        expect(alert).to_have_text(re.compile(r"That page or model no longer exists\."))
        expect(alert).to_have_attribute("role", "alert")
        alert.get_by_role("button", name="Dismiss this message").click()
        expect(alert).to_have_count(0)
