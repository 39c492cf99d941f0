"""Ambiguous outcomes are settled at the source (issue 11): when a change's answer is
lost or unreadable, the service reads the model back once, before anything else, and
records what it finds. Only what that read cannot settle stays unknown."""

from __future__ import annotations

import json

import pytest
from pytest_django.asserts import assertContains

from models_admin import remote, services
from models_admin.audit import Actor, Kind, Outcome
from tests.conftest import ALICE_KEY
from tests.helpers import HTMX, fine_tuned, url
from tests.test_audit import entries
from tests.test_reconcile import ONE_MODEL, pinned


def methods(sandbox) -> list[str]:
    return [r.method for r in sandbox.state.requests]


def edit(client, ft: dict, *, name: str | None = None, description: str = "new words"):
    expected = {"name": ft["name"], "description": ft["description"]}
    return client.post(
        url("model_edit", ft["id"]),
        {
            "name": ft["name"] if name is None else name,
            "description": description,
            "expected": json.dumps(expected),
        },
        headers=HTMX,
    )


def outcome():
    (entry,) = entries(kind=Kind.OUTCOME)
    return entry


class TestReadBack:
    def test_a_rename_whose_answer_was_lost_is_confirmed(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        # Mistral renames, but every answer to the PATCH comes too late.
        sandbox.state.faults.set(hang_s=3, hang_times=10, hang_after=True, match="PATCH")

        response = edit(as_alice, ft, name="renamed-in-the-dark", description=ft["description"])

        assertContains(response, "Saved renamed-in-the-dark")
        assert outcome().outcome == Outcome.SUCCEEDED
        assert outcome().message == (
            "Confirmed by reading the model back: the model has the requested values."
        )
        assert outcome().changes == {"name": [ft["name"], "renamed-in-the-dark"]}
        # One read before, the PATCH (with the client's retries), one read back; nothing after.
        log = methods(sandbox)
        assert log[0] == "GET" and log[-1] == "GET" and set(log[1:-1]) == {"PATCH"}

    def test_a_2xx_that_breaks_the_contract_is_settled_too(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        # The sandbox answers a 200 maintenance page instead of archiving.
        sandbox.state.faults.set(malformed_times=1, malformed_kind="html", match="POST")

        response = as_alice.post(url("model_row_archive", ft["id"]), headers=HTMX)

        assertContains(response, "could not read")
        assert outcome().outcome == Outcome.FAILED
        assert "Reading the model back showed the model is not archived" in outcome().message
        assert methods(sandbox) == ["GET", "POST", "GET"]

    def test_a_change_that_did_not_happen_is_failed_and_can_be_retried(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        sandbox.state.faults.set(fail_status=502, fail_times=10, match="POST")

        response = as_alice.post(url("model_row_archive", ft["id"]), headers=HTMX)

        assertContains(response, "HTTP 502")
        assert outcome().outcome == Outcome.FAILED
        assert outcome().upstream_status == 502
        assert "Reading the model back showed the model is not archived" in outcome().message
        assert methods(sandbox)[-1] == "GET"
        assert sandbox.state.workspace(ALICE_KEY).models[ft["id"]]["archived"] is False

    def test_what_the_read_cannot_settle_stays_unknown(self, alice, sandbox):
        ft = fine_tuned(sandbox)
        session = pinned(alice)  # spares the read before the change
        sandbox.state.faults.set(fail_status=502, fail_times=100, match=ONE_MODEL)

        with pytest.raises(remote.ApiUnavailable):
            services.model_archive(actor=Actor(alice), model_id=ft["id"], session=session)

        entry = outcome()
        assert entry.outcome == Outcome.UNKNOWN
        assert "reading the model back failed too" in entry.message
        assert "reconcile_audit will check" in entry.message
        assert methods(sandbox)[-1] == "GET"


class TestEditSendsOnlyWhatChanged:
    def test_a_long_name_set_elsewhere_does_not_block_the_description(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        long_name = "n" * 200  # longer than the form allows
        sandbox.state.workspace(ALICE_KEY).models[ft["id"]]["name"] = long_name
        ft = sandbox.state.workspace(ALICE_KEY).models[ft["id"]]

        response = edit(as_alice, ft, description="only the words change")

        assert response.status_code == 200
        assert outcome().outcome == Outcome.SUCCEEDED
        (patch,) = [r for r in sandbox.state.requests if r.method == "PATCH"]
        assert patch.json == {"description": "only the words change"}

    def test_a_new_name_still_has_the_forms_limit(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)

        response = edit(as_alice, ft, name="n" * 200)

        assertContains(response, "at most 128 characters")
        assert "PATCH" not in methods(sandbox)
