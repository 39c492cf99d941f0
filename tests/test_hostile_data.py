"""Hostile data from Mistral and from the query string (issue 13, Medium 3 and Low 5-7):
every one of these answered 500. The NUL-byte tests need PostgreSQL (SQLite stores a
NUL); run them with DATABASE_URL=postgres://..."""

from __future__ import annotations

import io
import re

import httpx
import pytest
from django.core.management import call_command
from django.db import connection
from pytest_django.asserts import assertContains

from models_admin import audit, audit_chain, storable
from models_admin.audit import Action, Kind, Outcome
from models_admin.models import AuditEntry, BulkItem
from tests.conftest import ALICE_KEY
from tests.helpers import HTMX, fine_tuned, url

NUL_NAME = "evil\x00name"


def upstream(sandbox, method: str, path: str, **kwargs) -> httpx.Response:
    """Change the sandbox through its API, as anyone with the key could at Mistral."""
    headers = {"Authorization": f"Bearer {ALICE_KEY}"}
    response = httpx.request(method, f"{sandbox.url}{path}", headers=headers, **kwargs)
    assert response.status_code == 200, response.text
    return response


def rename_upstream(sandbox, model_id: str, name: str) -> None:
    upstream(sandbox, "PATCH", f"/v1/fine_tuning/models/{model_id}", json={"name": name})


def inject_card(sandbox, **card) -> dict:
    return upstream(sandbox, "POST", "/_sandbox/models", json=card).json()


class TestStorable:
    def test_refused_characters_are_replaced_and_long_strings_cut(self):
        assert storable.text("a\x00b\ud800c") == "a\ufffdb\ufffdc"
        assert storable.text("x" * 400, 300) == "x" * 299 + "…"
        assert storable.json_value({"n\x00": ["\x00", 1, None]}) == {"n\ufffd": ["\ufffd", 1, None]}

    def test_an_entry_with_hostile_strings_is_stored_and_verifies(self, alice):
        audit.append(
            kind=Kind.EVENT,
            action=Action.MODEL_UPDATE,
            outcome=Outcome.SUCCEEDED,
            actor=audit.Actor(alice),
            target_id="ft:\x00" + "i" * 400,
            target_name=NUL_NAME,
            before={"name": NUL_NAME, "bad\x00key": "\ud800"},
            changes={"name": [NUL_NAME, "fine"]},
        )

        entry = AuditEntry.objects.get()
        assert entry.target_name == "evil\ufffdname"
        assert len(entry.target_id) == 300
        assert entry.before == {"name": "evil\ufffdname", "bad\ufffdkey": "\ufffd"}
        assert audit_chain.verify_chain().ok


@pytest.mark.postgres
class TestNulBytesOnPostgres:
    """Medium 3: a NUL in a name, set through Mistral's API, broke archive, delete, bulk
    prepare and reconcile_audit with a DataError, leaving no audit entry."""

    @pytest.fixture(autouse=True)
    def _postgresql_only(self):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (run with DATABASE_URL=postgres://...)")

    @pytest.fixture
    def hostile(self, as_alice, sandbox) -> dict:
        card = fine_tuned(sandbox)
        rename_upstream(sandbox, card["id"], NUL_NAME)
        as_alice.get(url("model_list"))  # the name is cached now
        return card

    @pytest.mark.parametrize("name", ["model_archive", "model_row_archive"])
    def test_archive_is_recorded(self, as_alice, hostile, name):
        response = as_alice.post(url(name, hostile["id"]), headers=HTMX)

        assert response.status_code == 200
        attempt, outcome = AuditEntry.objects.order_by("seq")
        # (The attempt has the cached name, unless another test worker emptied the
        # shared cache; the outcome has the name Mistral answered with.)
        assert attempt.target_name in ("", "evil\ufffdname")
        assert outcome.target_name == "evil\ufffdname"
        assert outcome.outcome == Outcome.SUCCEEDED
        assert audit_chain.verify_chain().ok

    def test_delete_is_recorded(self, as_alice, hostile):
        response = as_alice.post(
            url("model_delete", hostile["id"]),
            {"confirm_id": hostile["id"], "reason": "hostile"},
            headers=HTMX,
        )

        assert response.status_code == 200
        assert AuditEntry.objects.filter(outcome=Outcome.SUCCEEDED).count() == 1
        assert "\x00" not in str(AuditEntry.objects.get(kind=Kind.ATTEMPT).before)

    def test_bulk_prepare_stores_the_name(self, as_alice, hostile):
        response = as_alice.post(
            url("bulk_prepare"), {"action": "archive", "ids": [hostile["id"]]}, headers=HTMX
        )

        assert response.status_code == 200
        assert BulkItem.objects.get().model_name == "evil\ufffdname"

    def test_reconcile_resolves_an_unknown_attempt_with_a_hostile_name(
        self, as_alice, hostile, sandbox
    ):
        # Mistral archives, but every answer comes too late: the attempt stays unknown.
        sandbox.state.faults.set(hang_s=3, hang_times=10, hang_after=True, match="archive")
        as_alice.post(url("model_archive", hostile["id"]), headers=HTMX)
        sandbox.state.faults.clear()

        call_command("reconcile_audit", "--min-age", "0", stdout=io.StringIO())

        latest = AuditEntry.objects.filter(kind=Kind.OUTCOME).order_by("-seq").first()
        assert latest is not None and latest.outcome == Outcome.SUCCEEDED
        assert audit_chain.verify_chain().ok

    def test_a_very_long_name_in_bulk_prepare(self, as_alice, sandbox):
        card = inject_card(sandbox, name="n" * 1000)

        response = as_alice.post(
            url("bulk_prepare"), {"action": "archive", "ids": [card["id"]]}, headers=HTMX
        )

        assert response.status_code == 200
        assert BulkItem.objects.get().model_name == "n" * 1000


class TestOddQueries:
    """Low 5: ``until=9999-12-31`` answered 500, and the export wrote a false entry first."""

    def test_the_audit_page_takes_the_last_date(self, as_alice):
        response = as_alice.get(url("audit_list"), {"until": "9999-12-31"})

        assert response.status_code == 200

    @pytest.mark.parametrize("name", ["audit_export_csv", "audit_export_ndjson"])
    def test_the_export_takes_the_last_date(self, as_alice, name):
        response = as_alice.get(url(name), {"until": "9999-12-31", "since": "0001-01-01"})
        b"".join(response.streaming_content)

        assert response.status_code == 200
        (entry,) = AuditEntry.objects.all()
        assert entry.action == Action.AUDIT_EXPORT


class TestOddCards:
    """Low 6: odd cards broke the model page."""

    def test_a_replacement_that_is_not_an_id(self, as_alice, sandbox):
        card = inject_card(
            sandbox,
            deprecation="2030-01-01T00:00:00Z",
            deprecation_replacement_model="not an id/../?x",
        )

        response = as_alice.get(url("model_detail", card["id"]))

        assertContains(response, "not an id/../?x")

    def test_a_creation_time_beyond_any_date(self, as_alice, sandbox):
        card = inject_card(sandbox)
        # The sandbox's id generator can't date such a card: set it on the stored card.
        sandbox.state.workspace(ALICE_KEY).models[card["id"]]["created"] = 10**12

        detail = as_alice.get(url("model_detail", card["id"]))
        listing = as_alice.get(url("model_list"))

        assertContains(detail, str(10**12))
        assert listing.status_code == 200


@pytest.mark.postgres
class TestTheLastResort:
    @pytest.fixture(autouse=True)
    def _postgresql_only(self):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (run with DATABASE_URL=postgres://...)")

    def test_an_entry_the_database_refuses_is_written_escaped(self, alice, monkeypatch):
        # As if storable.text missed a character PostgreSQL refuses.
        monkeypatch.setattr(storable, "_REFUSED", re.compile("(?!)"))

        audit.event(actor=audit.Actor(alice), action=Action.MODEL_UPDATE, target_name=NUL_NAME)

        assert AuditEntry.objects.get().target_name == "evil\\u0000name"
        assert audit_chain.verify_chain().ok

    def test_entries_appended_together_are_written_escaped_too(self, db, monkeypatch):
        # The inventory sync appends its entries in bulk: one refused value escapes them
        # all, and the chain still verifies.
        monkeypatch.setattr(storable, "_REFUSED", re.compile("(?!)"))
        entries = [
            audit.new_entry(
                kind=Kind.EVENT,
                action=Action.MODEL_UPDATE,
                outcome=Outcome.SUCCEEDED,
                actor=None,
                system="system:sync_models",
                target_name=name,
            )
            for name in (NUL_NAME, "plain")
        ]

        audit.append_many(entries)

        names = AuditEntry.objects.order_by("seq").values_list("target_name", flat=True)
        assert list(names) == ["evil\\u0000name", "plain"]
        assert audit_chain.verify_chain().ok
