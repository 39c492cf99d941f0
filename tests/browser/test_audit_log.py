"""The audit log in a real browser: a team admin filters it, opens an entry, exports
exactly what she filtered as CSV and reviews the deleted models; an auditor reads and
exports it; a member is kept out."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, expect

from models_admin import audit, remote, roles, services
from models_admin.audit import Action, Actor, Kind, Outcome
from models_admin.models import AuditEntry
from tests.browser.conftest import (
    fine_tuned,
    mark_page,
    model_row,
    page_is_marked,
    sign_in,
    workspace,
)
from tests.conftest import CAROL_KEY, make_user

pytestmark = pytest.mark.browser

DELETE_REASON = "replaced by sql-assistant-v8"
# How a team admin's role is shown ("team_admin" or "Team admin", as the templates evolve).
TEAM_ADMIN = r"(?i:team[_ ]admin)"


@dataclass(frozen=True)
class History:
    """What alice did before opening the log (one model id per kind of change)."""

    archived: str
    renamed: str
    delete_failed: str
    deleted_by_service: str
    deleted_in_browser: str


def _service_changes(alice: User, sandbox) -> dict[str, str]:
    """Archive, rename, a delete that fails upstream (503) and one that succeeds, all
    through the services as alice."""
    actor = Actor(user=alice)
    archived = fine_tuned(sandbox, name="sales-triage-202404")["id"]
    renamed = fine_tuned(sandbox, name="support-rewriter-v5")
    failed = fine_tuned(sandbox, name="docs-autocomplete-v3")["id"]
    deleted = fine_tuned(sandbox, name="docs-faq-bot-v4")["id"]

    services.model_archive(actor=actor, model_id=archived)
    services.model_update(
        actor=actor,
        model_id=renamed["id"],
        name="support-rewriter-v6",
        description=renamed["description"],
        expected_name="support-rewriter-v5",
        expected_description=renamed["description"],
    )
    sandbox.state.faults.set(fail_status=503, fail_times=100, match=f"DELETE .*{re.escape(failed)}")
    with pytest.raises(remote.ModelsApiError):
        services.model_delete(actor=actor, model_id=failed, reason="tidying up")
    sandbox.state.faults.clear()
    services.model_delete(actor=actor, model_id=deleted, reason="duplicate of docs-faq-bot-v5")
    return {
        "archived": archived,
        "renamed": renamed["id"],
        "delete_failed": failed,
        "deleted_by_service": deleted,
    }


def delete_in_browser(page: Page, model_id: str, name: str, reason: str) -> None:
    """Delete a model from the list through its dialog, as alice would."""
    model_row(page, model_id).get_by_role("link", name=f"Delete {name}").click()
    dialog = page.locator("#dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Type the model id to confirm").fill(model_id)
    dialog.get_by_label("Reason (kept in the audit log)").fill(reason)
    dialog.get_by_role("button", name="Delete for good").click()
    expect(model_row(page, model_id)).to_have_count(0)
    expect(page.locator("#alerts")).to_contain_text(f"Deleted {name}.")


@pytest.fixture
def history(page, live_server, alice, sandbox) -> History:
    """Alice's changes: four through the services, then a delete in the browser (which
    leaves her signed in on the model list)."""
    done = _service_changes(alice, sandbox)
    target = fine_tuned(sandbox, name="sql-assistant-v7")["id"]
    sign_in(page, live_server, alice)
    delete_in_browser(page, target, "sql-assistant-v7", DELETE_REASON)
    assert workspace(sandbox).get(target) is None
    return History(**done, deleted_in_browser=target)


def filter_field(page: Page, label: str) -> Locator:
    """A field of the log's filter form. Its labels should read "Action", "To"..., and
    still end in a colon (see test_the_filter_labels_have_no_colon): accept both."""
    return page.locator("form.filters").get_by_label(re.compile(rf"^{label}:?$"))


def audit_rows(page: Page) -> Locator:
    return page.locator("#audit-table tbody tr")


def attempt_of(model_id: str, action: str = Action.MODEL_DELETE) -> AuditEntry:
    return AuditEntry.objects.get(kind=Kind.ATTEMPT, action=action, target_id=model_id)


def download_csv(page: Page, link: Locator) -> list[dict[str, str]]:
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert re.fullmatch(r"audit-log-\d{8}-\d{6}\.csv", download.suggested_filename)
    with Path(download.path()).open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def today() -> str:
    return datetime.now(UTC).date().isoformat()


class TestTeamAdmin:
    def test_filter_open_an_entry_go_back_and_export_the_filtered_rows(
        self, page, live_server, history
    ):
        target = history.deleted_in_browser
        attempt = attempt_of(target)
        nav = page.get_by_role("navigation", name="Main")
        nav.get_by_role("link", name="Audit log").click()
        expect(page).to_have_url(f"{live_server.url}/audit/")
        expect(nav.get_by_role("link", name="Audit log")).to_have_attribute("aria-current", "page")
        # archive, rename, 2 deletes, the browser delete (attempts; outcomes fold into them)
        expect(audit_rows(page)).to_have_count(5)
        mark_page(page)

        # Action: the three deletes, whatever their outcome.
        filter_field(page, "Action").select_option(label="Delete model")
        expect(page).to_have_url(re.compile(r"[?&]action=model\.delete(&|$)"))
        expect(audit_rows(page)).to_have_count(3)
        failed_row = audit_rows(page).filter(has_text=history.delete_failed)
        expect(failed_row.locator(".badge")).to_have_text("failed")
        expect(failed_row).to_contain_text("HTTP 503")

        # Outcome: the failed one goes.
        filter_field(page, "Outcome").select_option("succeeded")
        expect(page).to_have_url(re.compile(r"[?&]outcome=succeeded(&|$)"))
        expect(audit_rows(page)).to_have_count(2)
        expect(audit_rows(page).filter(has_text=history.delete_failed)).to_have_count(0)

        # Search (a change, or Enter, sends it).
        search = filter_field(page, "Search")
        search.fill("sql-assistant")
        search.press("Enter")
        expect(page).to_have_url(re.compile(r"[?&]q=sql-assistant(&|$)"))
        expect(audit_rows(page)).to_have_count(1)
        row = audit_rows(page).first
        expect(row).to_contain_text(target)
        expect(row).to_contain_text(f"“{DELETE_REASON}”")
        expect(row.locator(".badge")).to_have_text("succeeded")

        # A date range: one that ends yesterday holds nothing, one that holds today does.
        yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
        filter_field(page, "From").fill(yesterday)
        filter_field(page, "To").fill(yesterday)
        expect(page).to_have_url(re.compile(rf"[?&]until={yesterday}(&|$)"))
        expect(page.locator("#audit-table")).to_contain_text("No entry matches these filters.")
        filter_field(page, "To").fill(today())
        expect(page).to_have_url(re.compile(rf"[?&]since={yesterday}&until={today()}(&|$)"))
        expect(audit_rows(page)).to_have_count(1)
        assert page_is_marked(page), "filtering reloaded the page"
        filtered_url = page.url

        # The entry: reason, the card as it was, the chain.
        row.get_by_role("link", name=str(attempt.seq), exact=True).click()
        expect(page).to_have_url(f"{live_server.url}/audit/{attempt.seq}/")
        expect(page.get_by_role("heading", level=1)).to_have_text(f"#{attempt.seq} · Delete model")
        facts = page.locator("section.card", has=page.get_by_role("heading", name="What happened"))
        expect(facts).to_contain_text(f"Reason“{DELETE_REASON}”")
        expect(facts).to_contain_text(re.compile(rf"alice <alice@example\.com> · {TEAM_ADMIN}"))
        outcome = page.locator("section.card", has=page.get_by_role("heading", name="Outcome"))
        expect(outcome.locator(".badge")).to_have_text("succeeded")
        before = page.locator(
            "section.card", has=page.get_by_role("heading", name="The model before the change")
        )
        expect(before).to_contain_text(target)
        expect(before).to_contain_text("sql-assistant-v7")
        expect(before).to_contain_text("open-mistral-nemo")
        chain = page.locator("section.card", has=page.get_by_role("heading", name="Chain"))
        expect(chain).to_contain_text(f"Previous hash{attempt.prev_hash}")
        expect(chain).to_contain_text(f"HMAC-SHA256{attempt.hash}")
        assert re.fullmatch(r"[0-9a-f]{64}", attempt.hash)

        # Back: the filtered log, filters still set.
        page.go_back()
        expect(page).to_have_url(filtered_url)
        expect(audit_rows(page)).to_have_count(1)
        expect(filter_field(page, "Action")).to_have_value("model.delete")
        expect(filter_field(page, "Outcome")).to_have_value("succeeded")
        expect(filter_field(page, "Search")).to_have_value("sql-assistant")

        # The export holds exactly the filtered row.
        export = page.get_by_role("link", name="Export CSV")
        expect(export).to_have_attribute("download", "")
        rows = download_csv(page, export)

        assert len(rows) == 1, rows
        (exported,) = rows
        assert exported["seq"] == str(attempt.seq)
        assert exported["kind"] == "attempt"
        assert exported["action"] == "model.delete"
        assert exported["target_id"] == target
        assert exported["target_name"] == "sql-assistant-v7"
        assert exported["outcome"] == "succeeded"
        assert exported["reason"] == DELETE_REASON
        assert exported["actor"] == "alice"
        assert exported["hash"] == attempt.hash
        assert exported["resolved_by_seq"] == str(attempt.outcomes.get().seq)
        # The export itself is on the record, with its filters.
        export_entry = AuditEntry.objects.get(action=Action.AUDIT_EXPORT)
        assert export_entry.actor_username == "alice"
        assert export_entry.details["filters"]["action"] == "model.delete"
        assert export_entry.details["filters"]["q"] == "sql-assistant"

    def test_export_right_after_filtering_holds_the_filtered_rows(self, page, live_server, history):
        page.goto(f"{live_server.url}/audit/")
        expect(audit_rows(page)).to_have_count(5)
        filter_field(page, "Action").select_option(label="Delete model")
        filter_field(page, "Outcome").select_option("succeeded")
        expect(page).to_have_url(re.compile(r"outcome=succeeded"))
        expect(audit_rows(page)).to_have_count(2)

        rows = download_csv(page, page.get_by_role("link", name="Export CSV"))

        assert sorted(r["target_id"] for r in rows) == sorted(
            [history.deleted_in_browser, history.deleted_by_service]
        )
        assert {(r["action"], r["outcome"]) for r in rows} == {("model.delete", "succeeded")}

    def test_the_filter_labels_have_no_colon(self, page, live_server, alice):
        sign_in(page, live_server, alice, "/audit/")
        labels = page.locator("form.filters label").all_inner_texts()

        assert labels == [
            "Search",
            "Actor",
            "Action",
            "Outcome",
            "Model id",
            "Source",
            "From",
            "To",
        ]

    def test_older_and_newer_fetch_the_table_alone(self, page, live_server, alice):
        for n in range(55):
            audit.event(actor=Actor(user=alice), action=Action.API_KEY_ADD, message=f"event {n}")
        sign_in(page, live_server, alice, "/audit/")
        expect(audit_rows(page)).to_have_count(50)
        mark_page(page)

        page.get_by_role("link", name="Older →").click()

        expect(page).to_have_url(re.compile(r"[?&]before=\d+"))
        expect(audit_rows(page)).to_have_count(5)
        expect(page.locator("#audit-table")).to_contain_text("event 0")
        page.get_by_role("link", name="← Newer").click()
        expect(audit_rows(page)).to_have_count(50)
        expect(page.locator("#audit-table")).to_contain_text("event 54")
        assert page_is_marked(page), "paging reloaded the whole page"

    def test_deleted_models_shows_who_when_why_and_the_last_card(self, page, live_server, history):
        page.goto(f"{live_server.url}/audit/")
        page.get_by_role("link", name="Deleted models").click()
        expect(page).to_have_url(f"{live_server.url}/audit/deleted-models/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Deleted models")
        cards = page.locator("main section.card")
        # The two deletes that went through, newest first; not the one Mistral refused.
        expect(cards).to_have_count(2)
        expect(cards.nth(0).get_by_role("heading", level=2)).to_have_text("sql-assistant-v7")
        expect(cards.nth(1).get_by_role("heading", level=2)).to_have_text("docs-faq-bot-v4")
        expect(page.locator("main")).not_to_contain_text(history.delete_failed)

        card = cards.nth(0)
        attempt = attempt_of(history.deleted_in_browser)
        deleted_at = attempt.outcomes.get().created_at.strftime("%Y-%m-%d %H:%M")
        expect(card).to_contain_text(history.deleted_in_browser)
        expect(card).to_contain_text(
            re.compile(
                rf"Deleted by alice \({TEAM_ADMIN}\) on {deleted_at} UTC, "
                rf"because: “{re.escape(DELETE_REASON)}”"
            )
        )
        last_card = card.locator("details")
        expect(last_card.locator("dl")).not_to_be_visible()
        last_card.get_by_text("Last known card").click()
        expect(last_card.locator("dl")).to_be_visible()
        expect(last_card).to_contain_text(history.deleted_in_browser)
        expect(last_card).to_contain_text("open-mistral-nemo")
        expect(cards.nth(1)).to_contain_text("because: “duplicate of docs-faq-bot-v5”")

        card.get_by_role("link", name=f"Entry #{attempt.seq}").click()
        expect(page).to_have_url(f"{live_server.url}/audit/{attempt.seq}/")


@pytest.fixture
def carol(transactional_db, sandbox) -> User:
    return make_user("carol", roles.Role.AUDITOR, CAROL_KEY)


class TestOtherRoles:
    def test_an_auditor_reads_the_log_and_exports_it(
        self, page, live_server, alice, carol, sandbox
    ):
        _service_changes(alice, sandbox)
        sign_in(page, live_server, carol)
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Team")).to_have_count(0)

        nav.get_by_role("link", name="Audit log").click()

        expect(page.get_by_role("heading", level=1)).to_contain_text("Audit log")
        expect(audit_rows(page)).to_have_count(4)
        expect(page.locator("#audit-table")).to_contain_text("alice")
        rows = download_csv(page, page.get_by_role("link", name="Export CSV"))
        # Alice's four changes, and (recorded before the first line goes out) this export.
        assert [(r["action"], r["actor"]) for r in rows] == [
            ("audit.export", "carol"),
            ("model.delete", "alice"),
            ("model.delete", "alice"),
            ("model.update", "alice"),
            ("model.archive", "alice"),
        ]
        assert [r["outcome"] for r in rows[1:3]] == ["succeeded", "failed"]
        # Her export is recorded, and shows in the log she just read.
        page.reload()
        expect(audit_rows(page)).to_have_count(5)
        export_row = audit_rows(page).first
        expect(export_row).to_contain_text("Export audit log")
        expect(export_row).to_contain_text("carol")

    def test_a_member_gets_the_403_page_and_no_link(self, page, live_server, charlie):
        sign_in(page, live_server, charlie, "/models/")
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        expect(
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log")
        ).to_have_count(0)

        response = page.goto(f"{live_server.url}/audit/")

        assert response is not None and response.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
        expect(page.locator("main")).to_contain_text("Only team admins and auditors")
        expect(page.locator("#audit-table")).to_have_count(0)
        response = page.goto(f"{live_server.url}/audit/export.csv")
        assert response is not None and response.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
        denied = AuditEntry.objects.get(action=Action.AUDIT_EXPORT)
        assert (denied.actor_username, denied.outcome) == ("charlie", Outcome.DENIED)
