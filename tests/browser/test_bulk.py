"""Bulk actions from the model list in a real browser: tick rows (or take every
matching model), confirm once in the dialog, watch the background job report each
model, retry the failures; from the keyboard, and without JavaScript.

Jobs run in a task worker (a thread of the test process, tests/workers.py), as they
would in a `run_worker` process: every wait is a Playwright expectation, never a sleep."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from models_admin.audit import Action, Kind
from models_admin.models import AuditEntry, BulkJob
from tests.browser.conftest import (
    bulk_fine_tuned,
    mark_page,
    model_row,
    page_is_marked,
    sign_in,
    workspace,
)
from tests.workers import worker_thread

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _task_worker(live_server):
    with worker_thread():
        yield


# Long enough for a job of a few models; far below the 20 s a stuck job would take.
JOB_TIMEOUT_MS = 10_000
# Sandbox latency that keeps a job visibly running: below MISTRAL_API_TIMEOUT (0.5 s in
# tests), or every call would time out.
SLOW_MS = 250


@pytest.fixture
def one_at_a_time(settings) -> None:
    """Bulk jobs make one upstream call at a time (the live server shares these settings)."""
    settings.BULK_CONCURRENCY = 1


def cards(sandbox, *, count: int) -> list[dict]:
    """The ``count`` newest named fine-tuned cards not archived (all on page 1)."""
    found = [
        c
        for c in workspace(sandbox).models.values()
        if c["type"] == "fine-tuned" and not c["archived"] and c.get("name")
    ]
    found.sort(key=lambda c: c["created"], reverse=True)
    return found[:count]


def tick(page: Page, card: dict) -> None:
    page.get_by_role("checkbox", name=f"Select {card['name']}", exact=True).check()


def apply_selected(page: Page) -> Locator:
    return page.get_by_role("button", name=re.compile(r"^Apply to \d+ selected$"))


def choose(page: Page, action: str) -> None:
    """Pick the bulk action (before or after ticking rows: either keeps the selection)."""
    select = page.get_by_label("Bulk action")
    select.select_option(label=action)
    expect(select).to_have_value(action.lower())


def confirm_for(page: Page, action: str, picked: list[dict]) -> None:
    """Choose the action, tick the picked rows and open the batch's confirmation."""
    choose(page, action)
    for card in picked:
        tick(page, card)
    apply_selected(page).click()


def dialog_title(page: Page) -> Locator:
    return page.locator("#dialog #dialog-title")


def item_row(page: Page, card: dict) -> Locator:
    return page.locator("#dialog .bulk-items tbody tr").filter(has_text=card["name"])


class TestBulkArchive:
    def test_tick_confirm_watch_close_and_the_table_follows(
        self, page, live_server, alice, sandbox, one_at_a_time
    ):
        picked = cards(sandbox, count=3)
        untouched = cards(sandbox, count=4)[3]
        sign_in(page, live_server, alice)
        mark_page(page)
        choose(page, "Archive")
        expect(apply_selected(page)).to_have_text("Apply to 0 selected")
        expect(apply_selected(page)).to_be_disabled()

        for card in picked:
            tick(page, card)
        expect(apply_selected(page)).to_have_text("Apply to 3 selected")
        expect(apply_selected(page)).to_be_enabled()
        apply_selected(page).click()

        dialog = page.locator("#dialog")
        expect(dialog).to_be_visible()
        expect(dialog_title(page)).to_have_text("Archive 3 models?")
        expect(dialog.locator(".bulk-items tbody tr")).to_have_count(3)
        for card in picked:
            expect(item_row(page, card)).to_contain_text(card["id"])
        assert all(not workspace(sandbox).get(c["id"])["archived"] for c in picked)

        # Slow Mistral down (one call at a time) so the running state can be seen.
        sandbox.state.faults.set(latency_ms=SLOW_MS)
        dialog.get_by_role("button", name="Archive 3 models").click()

        expect(dialog_title(page)).to_have_text(re.compile(r"Archive: \d of 3 done"))
        expect(dialog.get_by_role("progressbar", name="Progress")).to_be_visible()
        expect(dialog_title(page)).to_have_text("Archive: 3 done", timeout=JOB_TIMEOUT_MS)
        for card in picked:
            expect(item_row(page, card).locator(".badge")).to_have_text("Done")
        expect(dialog.get_by_role("button", name=re.compile("Retry"))).to_have_count(0)
        assert all(workspace(sandbox).get(c["id"])["archived"] for c in picked)
        assert not workspace(sandbox).get(untouched["id"])["archived"]

        dialog.get_by_role("button", name="Close").click()

        expect(dialog).to_be_hidden()
        # bulkFinished reloaded #model-table by itself: the badges are there, no reload.
        for card in picked:
            expect(model_row(page, card["id"]).locator(".badge.archived")).to_have_text("Archived")
            expect(
                model_row(page, card["id"]).get_by_role("button", name=f"Unarchive {card['name']}")
            ).to_be_visible()
        expect(model_row(page, untouched["id"]).locator(".badge.archived")).to_have_count(0)
        expect(apply_selected(page)).to_have_text("Apply to 0 selected")
        assert page_is_marked(page), "the list page reloaded"
        # One attempt per model in the audit log, each resolved.
        attempts = AuditEntry.objects.filter(kind=Kind.ATTEMPT, action=Action.MODEL_ARCHIVE)
        assert sorted(a.target_id for a in attempts) == sorted(c["id"] for c in picked)
        assert all(a.outcomes.count() == 1 for a in attempts)

    def test_closing_while_it_runs_still_brings_the_table_up_to_date(
        self, page, live_server, alice, sandbox, one_at_a_time
    ):
        picked = cards(sandbox, count=3)
        sign_in(page, live_server, alice)
        confirm_for(page, "Archive", picked)
        dialog = page.locator("#dialog")
        expect(dialog_title(page)).to_have_text("Archive 3 models?")
        sandbox.state.faults.set(latency_ms=SLOW_MS)
        dialog.get_by_role("button", name="Archive 3 models").click()
        expect(dialog_title(page)).to_have_text(re.compile(r"Archive: \d of 3 done"))

        dialog.get_by_role("button", name="Close").click()

        expect(dialog).to_be_hidden()
        job = BulkJob.objects.get()
        # Follow the job on its own page (it refreshes itself) until it has finished.
        job_page = page.context.new_page()
        job_page.goto(f"{live_server.url}/bulk/{job.pk}/")
        expect(job_page.locator("#dialog-title")).to_have_text(
            "Archive: 3 done", timeout=JOB_TIMEOUT_MS
        )
        job_page.close()
        for card in picked:
            expect(model_row(page, card["id"]).locator(".badge.archived")).to_have_text("Archived")

    def test_the_header_box_selects_every_fine_tuned_model_on_the_page(
        self, page, live_server, alice, sandbox
    ):
        sign_in(page, live_server, alice)
        choose(page, "Archive")
        boxes = page.locator('input[name="ids"]')
        total = boxes.count()
        assert total == 40  # every seeded fine-tuned model is on page 1 (newest first)
        header = page.get_by_role("checkbox", name="Select every fine-tuned model on this page")

        header.check()

        expect(apply_selected(page)).to_have_text(f"Apply to {total} selected")
        assert boxes.evaluate_all("bs => bs.every(b => b.checked)")
        # Unticking one leaves the header box half-set.
        boxes.first.uncheck()
        expect(apply_selected(page)).to_have_text(f"Apply to {total - 1} selected")
        assert header.evaluate("b => b.indeterminate && !b.checked")
        boxes.first.check()
        expect(header).to_be_checked()

        apply_selected(page).click()

        # Only those not archived yet qualify.
        qualifying = sum(
            1
            for c in workspace(sandbox).models.values()
            if c["type"] == "fine-tuned" and not c["archived"]
        )
        assert 0 < qualifying < total
        expect(dialog_title(page)).to_have_text(f"Archive {qualifying} models?")
        expect(page.locator("#dialog .bulk-items tbody tr")).to_have_count(qualifying)

        page.locator("#dialog").get_by_role("button", name="Cancel").click()
        expect(page.locator("#dialog")).to_be_hidden()
        assert BulkJob.objects.get().state == BulkJob.State.DRAFT

    def test_apply_to_all_matching_takes_every_page(self, page, live_server, alice, sandbox):
        bulk_fine_tuned(sandbox, 60)  # copies of sql-assistant-v7: root open-mistral-nemo
        root = "open-mistral-nemo"
        matching = [c for c in workspace(sandbox).models.values() if c.get("root") == root]
        qualifying = [c for c in matching if not c["archived"]]
        assert len(matching) > 50 and len(qualifying) < len(matching)
        archived_before = [
            c["id"]
            for c in workspace(sandbox).models.values()
            if c["type"] == "fine-tuned" and c.get("root") != root and c["archived"]
        ]
        sign_in(page, live_server, alice)
        mark_page(page)

        page.get_by_label("Root", exact=True).select_option(root)

        expect(page).to_have_url(re.compile(rf"[?&]root={root}(&|$)"))
        expect(page.locator("#model-count")).to_contain_text(f"{len(matching)} of")
        expect(page.locator("#model-count")).to_contain_text("page 1 of 2")
        all_matching = page.get_by_role("button", name=f"Apply to all {len(matching)} matching")
        expect(all_matching).to_be_visible()
        choose(page, "Archive")
        all_matching.click()

        expect(dialog_title(page)).to_have_text(f"Archive {len(qualifying)} models?")
        listed = page.locator("#dialog .bulk-items tbody tr code")
        expect(listed).to_have_count(len(qualifying))
        assert sorted(listed.all_inner_texts()) == sorted(c["id"] for c in qualifying)
        page.locator("#dialog").get_by_role(
            "button", name=f"Archive {len(qualifying)} models"
        ).click()

        expect(dialog_title(page)).to_have_text(
            f"Archive: {len(qualifying)} done", timeout=JOB_TIMEOUT_MS
        )
        assert all(workspace(sandbox).get(c["id"])["archived"] for c in matching)
        others = [
            c
            for c in workspace(sandbox).models.values()
            if c["type"] == "fine-tuned" and c.get("root") != root
        ]
        assert [c["id"] for c in others if c["archived"]] == archived_before
        page.locator("#dialog").get_by_role("button", name="Close").click()
        # The filtered table reloads by itself: every row on it archived.
        expect(page.locator("tr[data-model-id] .badge.archived")).to_have_count(50)
        assert page_is_marked(page)


class TestSelection:
    def test_choosing_the_action_after_ticking_keeps_the_selection(
        self, page, live_server, alice, sandbox
    ):
        picked = cards(sandbox, count=2)
        sign_in(page, live_server, alice)
        for card in picked:
            tick(page, card)
        expect(apply_selected(page)).to_have_text("Apply to 2 selected")

        page.get_by_label("Bulk action").select_option(label="Delete")

        expect(page.locator("#loading")).not_to_have_class(re.compile(r"htmx-request"))
        assert page.url == f"{live_server.url}/models/"
        assert page.get_by_label("Bulk action").input_value() == "delete"
        expect(apply_selected(page)).to_have_text("Apply to 2 selected")
        apply_selected(page).click()
        expect(dialog_title(page)).to_have_text("Delete 2 models?")


class TestBulkDelete:
    def test_the_number_and_a_reason_are_required(self, page, live_server, alice, sandbox):
        picked = cards(sandbox, count=2)
        sign_in(page, live_server, alice)
        mark_page(page)
        confirm_for(page, "Delete", picked)
        dialog = page.locator("#dialog")
        expect(dialog_title(page)).to_have_text("Delete 2 models?")
        count = dialog.get_by_label("Type the number of models to confirm")
        reason = dialog.get_by_label("Reason (kept in the audit log for every model)")
        expect(count).to_be_focused()
        confirm = dialog.get_by_role("button", name="Delete 2 models")

        # A wrong number: an error in the dialog, nothing deleted.
        count.fill("3")
        reason.fill("end of the pilot")
        confirm.click()
        expect(dialog).to_contain_text("Type 2, the number of models that will be deleted.")
        expect(dialog_title(page)).to_have_text("Delete 2 models?")
        # No reason: the same.
        count.fill("2")
        reason.fill("")
        confirm.click()
        expect(dialog.locator("#bulk-job")).to_contain_text("This field is required.")
        assert all(workspace(sandbox).get(c["id"]) is not None for c in picked)
        assert BulkJob.objects.get().state == BulkJob.State.DRAFT
        assert not AuditEntry.objects.filter(action=Action.MODEL_DELETE).exists()

        reason.fill("end of the pilot")
        confirm.click()

        expect(dialog_title(page)).to_have_text("Delete: 2 done", timeout=JOB_TIMEOUT_MS)
        assert all(workspace(sandbox).get(c["id"]) is None for c in picked)
        attempts = AuditEntry.objects.filter(kind=Kind.ATTEMPT, action=Action.MODEL_DELETE)
        assert sorted(a.target_id for a in attempts) == sorted(c["id"] for c in picked)
        assert {a.reason for a in attempts} == {"end of the pilot"}
        dialog.get_by_role("button", name="Close").click()
        for card in picked:
            expect(model_row(page, card["id"])).to_have_count(0)
        assert page_is_marked(page)


def run_with_two_failures(page: Page, live_server, alice, sandbox) -> tuple[list, list]:
    """Archive 4 models, 2 of which Mistral refuses (503, every retry); ends on the
    finished job's results. Returns (picked, broken)."""
    picked = cards(sandbox, count=4)
    broken = picked[1::2]
    pattern = "|".join(re.escape(c["id"]) for c in broken)
    sign_in(page, live_server, alice)
    confirm_for(page, "Archive", picked)
    expect(dialog_title(page)).to_have_text("Archive 4 models?")
    sandbox.state.faults.set(fail_status=503, fail_times=100, match=f"POST .*({pattern})")

    page.locator("#dialog").get_by_role("button", name="Archive 4 models").click()

    expect(dialog_title(page)).to_have_text("Archive: 2 done, 2 failed", timeout=JOB_TIMEOUT_MS)
    return picked, broken


class TestPartialFailure:
    def test_each_model_s_result_is_shown(self, page, live_server, alice, sandbox):
        picked, broken = run_with_two_failures(page, live_server, alice, sandbox)

        for card in broken:
            expect(item_row(page, card).locator(".badge")).to_have_text("Failed")
            expect(item_row(page, card)).to_contain_text("HTTP 503")
            assert not workspace(sandbox).get(card["id"])["archived"]
        for card in picked[0::2]:
            expect(item_row(page, card).locator(".badge")).to_have_text("Done")
            assert workspace(sandbox).get(card["id"])["archived"]
        expect(
            page.locator("#dialog").get_by_role("button", name="Retry the 2 failed")
        ).to_be_visible()
        outcomes = AuditEntry.objects.filter(kind=Kind.OUTCOME, action=Action.MODEL_ARCHIVE)
        assert sorted(o.target_id for o in outcomes.filter(outcome="failed")) == sorted(
            c["id"] for c in broken
        )
        assert outcomes.filter(outcome="succeeded").count() == 2
        # Closing shows the two that went through as archived, the others not.
        page.locator("#dialog").get_by_role("button", name="Close").click()
        for card in picked[0::2]:
            expect(model_row(page, card["id"]).locator(".badge.archived")).to_have_text("Archived")
        for card in broken:
            expect(model_row(page, card["id"]).locator(".badge.archived")).to_have_count(0)

    def test_retry_the_failed_shows_the_retry_s_results(self, page, live_server, alice, sandbox):
        picked, broken = run_with_two_failures(page, live_server, alice, sandbox)
        first = BulkJob.objects.get()
        dialog = page.locator("#dialog")
        sandbox.state.faults.clear()

        dialog.get_by_role("button", name="Retry the 2 failed").click()

        expect(dialog.get_by_role("button", name="Retry the 2 failed")).to_have_count(0)
        retry = BulkJob.objects.exclude(pk=first.pk).get()
        assert sorted(retry.items.values_list("model_id", flat=True)) == sorted(
            c["id"] for c in broken
        )
        # The retry runs whatever the dialog shows: follow it on its own page (which
        # refreshes itself) so it has finished before the test ends.
        job_page = page.context.new_page()
        job_page.goto(f"{live_server.url}/bulk/{retry.pk}/")
        expect(job_page.locator("#dialog-title")).to_have_text(
            "Archive: 2 done", timeout=JOB_TIMEOUT_MS
        )
        job_page.close()
        assert all(workspace(sandbox).get(c["id"])["archived"] for c in picked)
        # The dialog polls once a second: it follows with the retry's results too.
        expect(dialog_title(page)).to_have_text("Archive: 2 done")
        expect(dialog.locator(".bulk-items tbody tr")).to_have_count(2)
        for card in broken:
            expect(item_row(page, card).locator(".badge")).to_have_text("Done")
        dialog.get_by_role("button", name="Close").click()
        for card in picked:
            expect(model_row(page, card["id"]).locator(".badge.archived")).to_have_text("Archived")


class TestKeyboard:
    def test_select_apply_and_confirm_without_the_mouse(self, page, live_server, alice, sandbox):
        picked = cards(sandbox, count=2)
        sign_in(page, live_server, alice)
        dialog = page.locator("#dialog")
        choose(page, "Delete")
        for card in picked:
            page.get_by_role("checkbox", name=f"Select {card['name']}", exact=True).focus()
            page.keyboard.press("Space")
        expect(apply_selected(page)).to_have_text("Apply to 2 selected")
        apply_selected(page).focus()
        page.keyboard.press("Enter")

        expect(dialog_title(page)).to_have_text("Delete 2 models?")
        expect(dialog.get_by_label("Type the number of models to confirm")).to_be_focused()
        assert page.evaluate("document.getElementById('dialog').contains(document.activeElement)")
        page.keyboard.type("2")
        page.keyboard.press("Tab")
        expect(
            dialog.get_by_label("Reason (kept in the audit log for every model)")
        ).to_be_focused()
        page.keyboard.type("typed with the keyboard")
        page.keyboard.press("Tab")
        expect(dialog.get_by_role("button", name="Delete 2 models")).to_be_focused()
        page.keyboard.press("Enter")

        expect(dialog_title(page)).to_have_text("Delete: 2 done", timeout=JOB_TIMEOUT_MS)
        assert all(workspace(sandbox).get(c["id"]) is None for c in picked)
        # Escape closes the dialog; the table has already followed.
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        for card in picked:
            expect(model_row(page, card["id"])).to_have_count(0)


class TestWithoutJavaScript:
    def test_a_confirmation_page_then_a_job_page_that_refreshes_itself(
        self, js_off_page, live_server, alice, sandbox, one_at_a_time
    ):
        page = js_off_page
        picked = cards(sandbox, count=4)
        sign_in(page, live_server, alice)
        for card in picked:
            tick(page, card)
        page.get_by_label("Bulk action").select_option(label="Archive")
        # Without JavaScript nothing counts the ticked rows, so the button names no number.
        button = page.get_by_role("button", name="Apply to the selected", exact=True)
        expect(button).to_be_enabled()

        button.click()

        expect(page).to_have_url(re.compile(r"/bulk/[0-9a-f-]{36}/$"))
        job_url = page.url
        expect(page.get_by_role("heading", level=2)).to_have_text("Archive 4 models?")
        for card in picked:
            expect(page.locator(".bulk-items")).to_contain_text(card["id"])
        # Slow enough (4 calls, one at a time) that the first job page is still running.
        sandbox.state.faults.set(latency_ms=SLOW_MS)
        page.get_by_role("button", name="Archive 4 models").click()

        expect(page).to_have_url(job_url)
        expect(page.get_by_role("heading", level=2)).to_have_text(
            re.compile(r"Archive: \d of 4 done")
        )
        expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(1)
        # The page reloads itself (no script runs) until the job has finished.
        expect(page.get_by_role("heading", level=2)).to_have_text(
            "Archive: 4 done", timeout=JOB_TIMEOUT_MS
        )
        expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(0)
        assert all(workspace(sandbox).get(c["id"])["archived"] for c in picked)

        sandbox.state.faults.clear()
        page.get_by_role("link", name="Back to the models").click()
        expect(page).to_have_url(f"{live_server.url}/models/")
        for card in picked:
            expect(model_row(page, card["id"]).locator(".badge.archived")).to_have_text("Archived")
