"""reconcile_audit weighs every piece of evidence and never guesses (issue 11).

Each scenario is produced over real HTTP: a change through the services whose answer is
lost *and* whose read-back fails too (so it stays unknown), then later changes on the
same model, then ``reconcile_audit``. A bulk job's pinned session is used for the lost
change, so that its only requests are the change and the read-back, both faulted.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import DataError
from pytest_django.asserts import assertContains

from models_admin import audit, remote, services
from models_admin.audit import Actor, Kind, Outcome
from models_admin.models import AuditEntry
from tests.conftest import ALICE_KEY
from tests.helpers import fine_tuned, url
from tests.test_audit import entries, verify

# Matches a change or a read of one model, never the list call.
ONE_MODEL = r"/v1/models/|/v1/fine_tuning/models/"


@pytest.fixture(autouse=True)
def no_retries(settings):
    """A lost answer is lost on every try here: retrying would only wait out the same
    fault (four timeouts per read-back instead of one)."""
    settings.MISTRAL_API_MAX_RETRIES = 0


def pinned(user) -> services.UpstreamSession:
    session = services.upstream_session(user)
    session.pin_inventory()  # the list call, before any fault
    return session


def lost(sandbox, *, happens: bool) -> None:
    """The next change's answer is lost (it happens or not), and so is the read-back."""
    sandbox.state.faults.clear()
    if happens:
        sandbox.state.faults.set(hang_s=3, hang_times=100, hang_after=True, match=ONE_MODEL)
    else:
        sandbox.state.faults.set(fail_status=502, fail_times=100, match=ONE_MODEL)


def reconcile() -> str:
    out = io.StringIO()
    call_command("reconcile_audit", "--min-age", "0", stdout=out)
    return out.getvalue()


def verdict_of(attempt: AuditEntry) -> AuditEntry:
    (outcome,) = entries(attempt=attempt, actor_username="system:reconcile_audit")
    outcome.message = outcome.message.lower()  # what the tests look for, in any case
    return outcome


def first_attempt() -> AuditEntry:
    return entries(kind=Kind.ATTEMPT)[0]


class TestLaterEntries:
    def test_a_failed_then_repeated_delete_did_not_happen(self, alice, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        lost(sandbox, happens=False)
        with pytest.raises(remote.ApiUnavailable):
            services.model_delete(
                actor=Actor(alice), model_id=ft["id"], reason="old", session=pinned(alice)
            )
        assert entries(kind=Kind.OUTCOME)[0].outcome == Outcome.UNKNOWN
        sandbox.state.faults.clear()
        services.model_delete(actor=Actor(alice), model_id=ft["id"], reason="old, again")
        repeat = entries(kind=Kind.ATTEMPT)[1]

        reconcile()

        verdict = verdict_of(first_attempt())
        assert verdict.outcome == Outcome.FAILED
        assert f"entry #{repeat.seq} (mistral answered its delete)" in verdict.message
        page = as_alice.get(url("audit_deleted"))
        assert page.content.decode().count(f'href="/audit/{repeat.seq}/"') == 1
        assert services.audit_deleted(actor=Actor(alice)).page.entries == [repeat]
        assert verify().ok

    def test_an_archive_that_happened_then_was_undone(self, alice, sandbox):
        ft = fine_tuned(sandbox)
        lost(sandbox, happens=True)
        with pytest.raises(remote.ApiTimeout):
            services.model_archive(actor=Actor(alice), model_id=ft["id"], session=pinned(alice))
        sandbox.state.faults.clear()
        services.model_unarchive(actor=Actor(alice), model_id=ft["id"])
        unarchive = entries(kind=Kind.ATTEMPT)[1]

        reconcile()

        # The current state (not archived) would say "failed": the unarchive's
        # before-snapshot shows the archive happened.
        verdict = verdict_of(first_attempt())
        assert verdict.outcome == Outcome.SUCCEEDED
        assert f"read before entry #{unarchive.seq}" in verdict.message

    def test_a_rename_of_a_model_deleted_later(self, alice, sandbox):
        ft = fine_tuned(sandbox)
        lost(sandbox, happens=True)
        with pytest.raises(remote.ApiTimeout):
            services.model_update(
                actor=Actor(alice),
                model_id=ft["id"],
                name="renamed-before-delete",
                description=ft["description"],
                expected_name=ft["name"],
                expected_description=ft["description"],
                session=pinned(alice),
            )
        sandbox.state.faults.clear()
        services.model_delete(actor=Actor(alice), model_id=ft["id"], reason="done")

        out = reconcile()

        verdict = verdict_of(first_attempt())
        assert verdict.outcome == Outcome.SUCCEEDED
        assert "the model has the requested values" in verdict.message
        assert "Resolved 1 of 1 unknown attempt(s) (0 undetermined)" in out

    def test_a_change_in_between_that_shows_nothing_leaves_it_undetermined(
        self, alice, as_alice, sandbox
    ):
        ft = fine_tuned(sandbox)
        session = pinned(alice)
        lost(sandbox, happens=True)
        with pytest.raises(remote.ApiTimeout):
            services.model_archive(actor=Actor(alice), model_id=ft["id"], session=session)
        # A second change, on another pinned session, also lost: it may have changed
        # the model, and nothing shows the state between the two.
        with pytest.raises(remote.ApiTimeout):
            services.model_unarchive(actor=Actor(alice), model_id=ft["id"], session=pinned(alice))
        sandbox.state.faults.clear()
        first, second = entries(kind=Kind.ATTEMPT)

        reconcile()

        verdict = verdict_of(first)
        assert verdict.outcome == Outcome.UNDETERMINED
        assert f"entry #{second.seq} may have changed the model since" in verdict.message
        # The second is judged from the current state: nothing after it.
        assert verdict_of(second).outcome == Outcome.SUCCEEDED
        assert "current state read at" in verdict_of(second).message
        # Final, and visible in the log.
        assert "Resolved 0 of 0" in reconcile()
        listed = as_alice.get(url("audit_list"), {"outcome": "undetermined"})
        assertContains(listed, f'href="/audit/{first.seq}/"')
        assertContains(listed, "outcome-undetermined")
        detail = as_alice.get(url("audit_detail", first.seq))
        assertContains(detail, "The evidence could not tell whether this change happened")

    def test_a_delete_proved_by_a_later_sight_of_the_model_whatever_came_between(
        self, alice, sandbox
    ):
        ft = fine_tuned(sandbox)
        lost(sandbox, happens=False)
        with pytest.raises(remote.ApiUnavailable):
            services.model_delete(
                actor=Actor(alice), model_id=ft["id"], reason="x", session=pinned(alice)
            )
        lost(sandbox, happens=True)
        with pytest.raises(remote.ApiTimeout):
            services.model_archive(actor=Actor(alice), model_id=ft["id"], session=pinned(alice))
        sandbox.state.faults.clear()
        services.model_unarchive(actor=Actor(alice), model_id=ft["id"])

        reconcile()

        delete, archive, unarchive = entries(kind=Kind.ATTEMPT)
        assert verdict_of(delete).outcome == Outcome.FAILED
        assert f"still existed at entry #{unarchive.seq}" in verdict_of(delete).message
        assert verdict_of(archive).outcome == Outcome.SUCCEEDED


class TestCurrentState:
    def test_used_only_when_nothing_later_touched_the_model(self, alice, sandbox):
        ft = fine_tuned(sandbox)
        lost(sandbox, happens=True)
        with pytest.raises(remote.ApiTimeout):
            services.model_delete(
                actor=Actor(alice), model_id=ft["id"], reason="x", session=pinned(alice)
            )
        sandbox.state.faults.clear()

        reconcile()

        verdict = verdict_of(first_attempt())
        assert verdict.outcome == Outcome.SUCCEEDED
        assert "the model is gone" in verdict.message
        assert "current state read at" in verdict.message
        assert ft["id"] not in sandbox.state.workspace(ALICE_KEY).models

    def test_mistral_down_leaves_it_unknown_for_the_next_run(self, alice, sandbox):
        ft = fine_tuned(sandbox)
        lost(sandbox, happens=False)
        with pytest.raises(remote.ApiUnavailable):
            services.model_archive(actor=Actor(alice), model_id=ft["id"], session=pinned(alice))

        out = reconcile()  # the faults are still on

        assert "0 of 1" in out and "1 still unknown" in out
        assert entries(actor_username="system:reconcile_audit") == []

    def test_an_entry_the_database_refuses_never_stops_the_others(
        self, alice, sandbox, monkeypatch
    ):
        first, second = fine_tuned(sandbox), fine_tuned(sandbox, archived=True)
        for ft in (first, second):
            lost(sandbox, happens=True)
            with pytest.raises(remote.ApiTimeout):
                services.model_delete(
                    actor=Actor(alice), model_id=ft["id"], reason="x", session=pinned(alice)
                )
        sandbox.state.faults.clear()
        append = audit.append

        def refuse_the_first(**fields):
            if fields.get("target_id") == first["id"]:
                raise DataError("value refused")
            return append(**fields)

        monkeypatch.setattr(audit, "append", refuse_the_first)

        reconcile()

        first_entry, second_entry = entries(kind=Kind.ATTEMPT)
        assert entries(attempt=first_entry, actor_username="system:reconcile_audit") == []
        assert verdict_of(second_entry).outcome == Outcome.SUCCEEDED
        assert verify().ok
