"""The inventory sync records changes made outside the dashboard, each once (issue 14).

Outside changes are made directly through the sandbox's HTTP API, with the same key,
as a script or Mistral's console would; the dashboard's own changes go through the
services, as a user's click does."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from models_admin import audit, audit_chain, remote, services, sync, upkeep
from models_admin.audit import Action, Actor, Kind, Outcome
from models_admin.models import ApiCredential, AuditEntry, ModelSnapshot, SyncKey, SyncWorkspace
from tests.conftest import ALICE_KEY, BOB_KEY, make_user
from tests.helpers import add_odd_cards, fine_tuned, fine_tuned_cards
from tests.workers import wait_until


def run_sync(*args: str) -> str:
    out = io.StringIO()
    call_command("sync_models", *args, stdout=out)
    return out.getvalue()


def outside() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(kind=Kind.OUTSIDE).order_by("seq"))


def upstream(sandbox, method: str, path: str, *, key: str = ALICE_KEY, **kwargs: Any) -> Any:
    """A change made outside the dashboard: straight to the sandbox's API."""
    response = remote.http_pool().request(
        method, f"{sandbox.url}{path}", headers={"Authorization": f"Bearer {key}"}, **kwargs
    )
    assert response.status_code == 200, response.text
    return response.json()


def upstream_body(sandbox, key: str = ALICE_KEY) -> bytes:
    response = remote.http_pool().get(
        f"{sandbox.url}/v1/models", headers={"Authorization": f"Bearer {key}"}
    )
    response.raise_for_status()
    return response.content


def rename(sandbox, model_id: str, name: str, key: str = ALICE_KEY) -> None:
    upstream(sandbox, "PATCH", f"/v1/fine_tuning/models/{model_id}", key=key, json={"name": name})


def stored(user) -> tuple[ApiCredential, str]:
    """The user's credential and key, as sync_all passes them to sync_key."""
    credential = ApiCredential.objects.get(user=user)
    return credential, credential.get_key()


def assert_chain_ok() -> None:
    report = audit_chain.verify_chain()
    assert report.ok, report.problem


AFTER_COMMIT = sync.after_commit


@pytest.fixture(autouse=True, params=["read back", "kept"])
def snapshots(request, monkeypatch) -> str:
    """Every test runs twice: comparing with the snapshot read back from the table, and
    with the one this process kept from its last sync (sync.KeptSnapshots). A test's
    transaction never commits, so "kept" keeps it at once, as a commit would."""
    if request.param == "kept":
        monkeypatch.setattr(sync, "after_commit", lambda callback: callback())
    return request.param


def snapshot_read(queries: CaptureQueriesContext) -> bool:
    return any(
        q["sql"].startswith("SELECT model_id, name, description, archived FROM")
        for q in queries.captured_queries
    )


@pytest.fixture
def synced(alice, sandbox):
    """Alice's workspace with its baseline taken."""
    output = run_sync()
    assert "first list, kept as the baseline" in output
    assert outside() == []
    return alice


class TestOutsideChanges:
    @pytest.mark.parametrize(
        ("change", "action", "field", "archived"),
        [
            ("rename", Action.MODEL_UPDATE, "name", False),
            ("describe", Action.MODEL_UPDATE, "description", False),
            ("archive", Action.MODEL_ARCHIVE, "archived", False),
            ("unarchive", Action.MODEL_UNARCHIVE, "archived", True),
            ("delete", Action.MODEL_DELETE, None, False),
        ],
    )
    def test_one_entry_per_change_then_none(self, synced, sandbox, change, action, field, archived):
        card = fine_tuned(sandbox, archived=archived)
        model_id = card["id"]
        path = f"/v1/fine_tuning/models/{model_id}"
        if change == "rename":
            upstream(sandbox, "PATCH", path, json={"name": "renamed-outside"})
        elif change == "describe":
            upstream(sandbox, "PATCH", path, json={"description": "described outside"})
        elif change == "archive":
            upstream(sandbox, "POST", f"{path}/archive")
        elif change == "unarchive":
            upstream(sandbox, "DELETE", f"{path}/archive")
        else:
            upstream(sandbox, "DELETE", f"/v1/models/{model_id}")

        assert "1 outside change(s) recorded" in run_sync()
        (entry,) = outside()
        assert (entry.action, entry.outcome, entry.target_id) == (
            action,
            Outcome.SUCCEEDED,
            model_id,
        )
        assert entry.actor_username == "outside the dashboard" and entry.actor is None
        credential = ApiCredential.objects.get(user=synced)
        assert entry.credential_masked == credential.key_masked != ""
        assert entry.details["seen_with"] == credential.key_masked
        start, end = entry.details["window"]
        assert start < end == entry.details["seen_at"]
        assert "outside the dashboard" in entry.message and credential.key_masked in entry.message
        assert entry.before["id"] == model_id  # the card as last seen
        if field == "name":
            assert entry.changes == {"name": [card["name"], "renamed-outside"]}
            assert entry.target_name == "renamed-outside"
        elif field == "description":
            assert entry.changes == {"description": [card["description"], "described outside"]}
        elif field == "archived":
            assert entry.changes == {"archived": [archived, not archived]}
            # JSON booleans, never SQLite's 0 and 1 (equal to them in Python)
            assert [type(v) for v in entry.changes["archived"]] == [bool, bool]
        else:
            assert entry.target_name == (card["name"] or model_id)
        assert_chain_ok()

        assert "0 outside change(s) recorded" in run_sync()
        assert len(outside()) == 1

    def test_a_changed_model_s_snapshot_row_is_rewritten_field_by_field(self, synced, sandbox):
        card = fine_tuned(sandbox, archived=False)
        path = f"/v1/fine_tuning/models/{card['id']}"
        before = ModelSnapshot.objects.get(model_id=card["id"])
        upstream(sandbox, "PATCH", path, json={"name": "new é", "description": "d\u00e9crit"})
        upstream(sandbox, "POST", f"{path}/archive")

        run_sync()

        after = ModelSnapshot.objects.get(model_id=card["id"])
        assert (after.pk, after.name, after.description, after.archived) == (
            before.pk,
            "new é",
            "décrit",
            True,
        )
        assert (after.card["name"], after.card["description"], after.card["archived"]) == (
            "new é",
            "décrit",
            True,
        )
        assert after.card["id"] == card["id"] and after.seen_at > before.seen_at
        untouched = ModelSnapshot.objects.exclude(pk=before.pk)
        assert not untouched.filter(seen_at__gt=before.seen_at).exists()

    def test_a_baseline_refreshes_postgresql_s_statistics_and_a_usual_sync_does_not(
        self, alice, sandbox, monkeypatch
    ):
        monkeypatch.setattr(sync, "ANALYZE_AFTER", 5)  # the sandbox's workspace is small

        with CaptureQueriesContext(connection) as baseline:
            run_sync()
        with CaptureQueriesContext(connection) as usual:
            rename(sandbox, fine_tuned(sandbox)["id"], "renamed")
            run_sync()

        def analyzed(queries: CaptureQueriesContext) -> bool:
            return any(q["sql"].startswith("ANALYZE") for q in queries.captured_queries)

        assert analyzed(baseline) == (connection.vendor == "postgresql")
        assert not analyzed(usual)

    def test_a_model_added_outside(self, synced, sandbox):
        added = upstream(sandbox, "POST", "/_sandbox/models", json={"name": "brand-new"})
        run_sync()
        (entry,) = outside()
        assert (entry.action, entry.target_id, entry.target_name) == (
            Action.MODEL_APPEAR,
            added["id"],
            "brand-new",
        )
        assert entry.changes["name"] == [None, "brand-new"]
        assert entry.details["card"]["id"] == added["id"]
        run_sync()
        assert len(outside()) == 1

    def test_every_kind_at_once_and_the_chain_holds(self, synced, sandbox):
        live = fine_tuned_cards(sandbox)
        archived = fine_tuned(sandbox, archived=True)
        rename(sandbox, live[0]["id"], "one")
        upstream(
            sandbox, "PATCH", f"/v1/fine_tuning/models/{live[1]['id']}", json={"description": "two"}
        )
        upstream(sandbox, "POST", f"/v1/fine_tuning/models/{live[2]['id']}/archive")
        upstream(sandbox, "DELETE", f"/v1/fine_tuning/models/{archived['id']}/archive")
        upstream(sandbox, "DELETE", f"/v1/models/{live[3]['id']}")
        upstream(sandbox, "POST", "/_sandbox/models", json={"name": "six"})

        run_sync()
        assert sorted(e.action for e in outside()) == sorted(
            [
                Action.MODEL_UPDATE,
                Action.MODEL_UPDATE,
                Action.MODEL_ARCHIVE,
                Action.MODEL_UNARCHIVE,
                Action.MODEL_DELETE,
                Action.MODEL_APPEAR,
            ]
        )
        run_sync()
        assert len(outside()) == 6
        assert_chain_ok()

    def test_a_change_undone_between_two_syncs_is_invisible(self, synced, sandbox):
        card = fine_tuned(sandbox)
        rename(sandbox, card["id"], "for a moment")
        rename(sandbox, card["id"], card["name"])
        run_sync()
        assert outside() == []

    def test_a_card_that_breaks_the_contract_is_not_compared(self, synced, sandbox):
        card = fine_tuned(sandbox)
        sandbox.state.faults.set(drop_fields=["archived"], match="GET /v1/models")
        upstream(sandbox, "POST", f"/v1/fine_tuning/models/{card['id']}/archive")
        run_sync()  # every card lacks "archived": none is compared, none vanishes
        assert outside() == []
        sandbox.state.faults.clear()
        run_sync()
        assert [e.action for e in outside()] == [Action.MODEL_ARCHIVE]

    def test_the_sandbox_s_odd_cards_are_read_tolerantly(self, synced, sandbox):
        odd = add_odd_cards(sandbox)
        assert sync.sync_key(*stored(synced)).status == "synced"
        # null job and no root: compared fields fine, so they appeared; "archived":
        # "yes" is unreadable, the unknown type is no fine-tuned model, no id: left out.
        assert sorted((e.action, e.target_name) for e in outside()) == [
            (Action.MODEL_APPEAR, "odd-no-root"),
            (Action.MODEL_APPEAR, "odd-null-job"),
        ]
        assert not ModelSnapshot.objects.filter(model_id=odd["odd-archived-yes"]["id"]).exists()
        run_sync()
        assert len(outside()) == 2

    @pytest.mark.parametrize(
        "odd",
        [{"archived": "yes"}, {"archived": None}, {"archived": 1}, {"name": 5}, {"name": ...}]
        + [{"description": {"a": 1}}, {"description": ...}],
        ids=repr,
    )
    def test_a_wrong_typed_field_is_not_compared_then_read_again(self, synced, sandbox, odd):
        card = fine_tuned(sandbox)
        workspace = sandbox.state.workspace(ALICE_KEY)
        renamed = {**card, "name": "renamed while odd"}
        odd_card = {**renamed, **odd}
        for name, value in odd.items():
            if value is ...:
                del odd_card[name]
        workspace.put(odd_card)
        assert sync.sync_key(*stored(synced)).recorded == 0  # not compared, not gone
        assert ModelSnapshot.objects.get(model_id=card["id"]).name == card["name"]
        workspace.put(renamed)
        run_sync()
        assert [(e.action, e.changes) for e in outside()] == [
            (Action.MODEL_UPDATE, {"name": [card["name"], "renamed while odd"]})
        ]

    def test_an_entry_without_a_string_id_is_left_out(self, synced, sandbox):
        workspace = sandbox.state.workspace(ALICE_KEY)
        workspace.put_without_id({**fine_tuned(sandbox), "id": 7})
        workspace.put_without_id({**fine_tuned(sandbox), "id": ""})
        run_sync()
        assert outside() == []


class TestKeptSnapshots:
    def test_the_next_sync_here_compares_with_the_snapshot_it_kept(
        self, synced, sandbox, snapshots
    ):
        rename(sandbox, fine_tuned(sandbox)["id"], "renamed")

        with CaptureQueriesContext(connection) as queries:
            assert "1 outside change(s) recorded" in run_sync()

        assert snapshot_read(queries) is (snapshots == "read back")

    def test_the_kept_snapshot_is_the_table_s(self, synced, sandbox, snapshots):
        cards = fine_tuned_cards(sandbox)
        rename(sandbox, cards[0]["id"], "renamed")
        upstream(sandbox, "DELETE", f"/v1/models/{cards[1]['id']}")
        add_odd_cards(sandbox)  # one with archived "yes": listed, not compared, kept as was
        run_sync()
        workspace = SyncKey.objects.get().workspace

        kept = sync.kept_snapshots.get(workspace)

        assert (kept is not None) is (snapshots == "kept")
        if kept is not None:
            assert kept == sync._snapshot_rows(workspace)

    def test_a_sync_in_another_process_makes_the_next_one_read_the_table(
        self, synced, sandbox, snapshots, monkeypatch
    ):
        model_id = fine_tuned(sandbox)["id"]
        rename(sandbox, model_id, "first")
        with monkeypatch.context() as elsewhere:  # its snapshot never reaches this process
            elsewhere.setattr(sync, "after_commit", lambda callback: None)
            assert "1 outside change(s) recorded" in run_sync()
        rename(sandbox, model_id, "second")

        with CaptureQueriesContext(connection) as queries:
            assert "1 outside change(s) recorded" in run_sync()

        assert snapshot_read(queries)
        first, second = (entry.changes["name"] for entry in outside())
        assert (first[1], second) == ("first", ["first", "second"])

    def test_it_is_kept_only_when_the_sync_commits(
        self, synced, sandbox, django_capture_on_commit_callbacks, monkeypatch
    ):
        monkeypatch.setattr(sync, "after_commit", AFTER_COMMIT)
        rename(sandbox, fine_tuned(sandbox)["id"], "renamed")
        sync.kept_snapshots.reset()
        workspace = SyncKey.objects.get().workspace

        with django_capture_on_commit_callbacks() as callbacks:
            run_sync()

        workspace.refresh_from_db()
        assert sync.kept_snapshots.get(workspace) is None  # not committed yet
        for callback in callbacks:
            callback()
        assert sync.kept_snapshots.get(workspace) == sync._snapshot_rows(workspace)

    def test_a_few_workspaces_are_kept(self):
        keep = sync.KeptSnapshots(max_workspaces=2)
        at = datetime(2026, 12, 1, tzinfo=UTC)
        for pk in (1, 2, 3):
            keep.keeper(pk, at, {"m": ("m", None, None, False)})()

        def workspace(pk: int) -> SyncWorkspace:
            return SyncWorkspace(pk=pk, list_started_at=at)

        assert [keep.get(workspace(pk)) is not None for pk in (1, 2, 3)] == [False, True, True]
        assert keep.get(SyncWorkspace(pk=3, list_started_at=at.replace(year=2027))) is None
        assert keep.get(SyncWorkspace(pk=3, list_started_at=None)) is None


class TestDashboardChanges:
    def test_the_dashboard_s_own_changes_are_not_recorded_twice(self, synced, sandbox):
        actor = Actor(user=synced)
        live = fine_tuned_cards(sandbox)
        archived = fine_tuned(sandbox, archived=True)
        services.model_update(
            actor=actor,
            model_id=live[0]["id"],
            name="via dashboard",
            description=live[0]["description"],
            expected_name=live[0]["name"],
            expected_description=live[0]["description"],
        )
        services.model_archive(actor=actor, model_id=live[1]["id"])
        services.model_delete(actor=actor, model_id=live[2]["id"], reason="cleanup")
        services.model_unarchive(actor=actor, model_id=archived["id"])

        output = run_sync()
        assert "0 outside change(s) recorded, 4 difference(s) made through the dashboard" in output
        assert outside() == []

    def test_an_outside_change_on_top_of_a_dashboard_one_is_recorded(self, synced, sandbox):
        card = fine_tuned(sandbox)
        services.model_archive(actor=Actor(user=synced), model_id=card["id"])
        rename(sandbox, card["id"], "outside too")
        run_sync()
        (entry,) = outside()
        assert (entry.action, entry.changes) == (
            Action.MODEL_UPDATE,
            {"name": [card["name"], "outside too"]},
        )

    def test_a_failed_dashboard_delete_does_not_hide_an_outside_one(self, synced, sandbox):
        card = fine_tuned(sandbox)
        upstream(sandbox, "DELETE", f"/v1/models/{card['id']}")
        with pytest.raises(remote.ModelNotFound):
            services.model_delete(actor=Actor(user=synced), model_id=card["id"], reason="x")
        run_sync()
        assert [e.action for e in outside()] == [Action.MODEL_DELETE]

    def test_a_change_in_flight_while_the_sync_lists(self, synced, sandbox):
        """The attempt is written, the change has reached Mistral, its answer has not
        come back: what a sync running at that moment finds."""
        card = fine_tuned(sandbox)
        actor = Actor(user=synced)
        with audit.attempt(
            actor=actor,
            action=Action.MODEL_UPDATE,
            target_id=card["id"],
            changes={"name": [card["name"], "in flight"]},
        ) as attempt:
            attempt.mark_sent()
            rename(sandbox, card["id"], "in flight")
            run_sync()  # sees the new name; the attempt has no outcome yet
        run_sync()
        assert outside() == []

    def test_a_change_sent_just_after_the_list_was_read(self, synced, sandbox):
        """The list misses the change; the next sync sees it, and the attempt settled
        after the previous list was asked for still explains it."""
        card = fine_tuned(sandbox)
        run_sync()
        services.model_archive(actor=Actor(user=synced), model_id=card["id"])
        run_sync()
        assert outside() == []


@pytest.mark.postgres
class TestRacingThreads:
    @pytest.fixture(autouse=True)
    def _postgresql_only(self):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (threads share no SQLite test database)")

    def test_a_dashboard_rename_racing_with_the_sync(self, transactional_db, sandbox):
        alice = make_user("alice", None, ALICE_KEY)
        from models_admin import roles

        roles.set_role(alice, roles.Role.TEAM_ADMIN)
        run_sync()
        card = fine_tuned(sandbox)
        sandbox.state.faults.set(hang_s=2, hang_times=1, hang_after=True, match="PATCH")

        def change() -> None:
            try:
                services.model_update(
                    actor=Actor(user=alice),
                    model_id=card["id"],
                    name="racing",
                    description=card["description"],
                    expected_name=card["name"],
                    expected_description=card["description"],
                )
            finally:
                connections.close_all()

        worker = threading.Thread(target=change)
        worker.start()
        workspace = sandbox.state.workspace(ALICE_KEY)
        wait_until(lambda: workspace.get(card["id"])["name"] == "racing", what="the rename")
        run_sync()  # the answer is still on its way
        worker.join()
        run_sync()
        assert outside() == []
        assert AuditEntry.objects.filter(kind=Kind.OUTCOME, outcome=Outcome.SUCCEEDED).count() == 1


class TestWorkspaces:
    def test_two_keys_of_one_workspace_record_a_change_once(self, synced, sandbox):
        make_user("dave", None, ALICE_KEY + "+second")
        make_user("erin", None, ALICE_KEY)  # the very same key: listed once
        output = run_sync()
        assert output.count("key ") == 2
        assert SyncKey.objects.values("workspace").distinct().count() == 1
        card = fine_tuned(sandbox)
        rename(sandbox, card["id"], "once")
        run_sync()
        run_sync()
        assert len(outside()) == 1

    def test_another_workspace_is_compared_with_its_own_snapshot(self, synced, bob, sandbox):
        run_sync()  # bob's baseline
        assert SyncKey.objects.values("workspace").distinct().count() == 2
        rename(sandbox, fine_tuned(sandbox, BOB_KEY)["id"], "bob's", key=BOB_KEY)
        run_sync()
        (entry,) = outside()
        assert entry.target_name == "bob's"

    def test_only_one_user_s_key(self, synced, bob, sandbox):
        output = run_sync("--user", "bob")
        assert output.count("key ") == 1 and "baseline" in output
        with pytest.raises(CommandError):
            run_sync("--user", "nobody")

    def test_a_key_mistral_refuses_fails_alone(self, synced, sandbox):
        make_user("mallory", None, "not-a-sandbox-key")
        with pytest.raises(CommandError, match="1 key"):
            run_sync()
        rename(sandbox, fine_tuned(sandbox)["id"], "still synced")
        with pytest.raises(CommandError):
            run_sync()
        assert len(outside()) == 1

    def test_a_key_that_cannot_be_decrypted_is_skipped(self, synced, sandbox):
        user = make_user("olga", None)
        ApiCredential.objects.create(user=user, key_encrypted="garbage", key_masked="…")
        assert "1 key(s)" in run_sync()


class TestSchedule:
    def test_the_sync_is_scheduled(self, synced, sandbox, settings):
        settings.MODEL_SYNC_MINUTES = 7
        item = upkeep.SCHEDULE["sync_models"]
        assert item.every().total_seconds() == 7 * 60
        rename(sandbox, fine_tuned(sandbox)["id"], "scheduled")
        assert "1 outside change(s) recorded" in item.run()

    def test_a_failed_key_fails_the_run(self, synced, sandbox):
        make_user("mallory", None, "not-a-sandbox-key")
        with pytest.raises(sync.SyncFailed):
            upkeep.SCHEDULE["sync_models"].run()

    def test_a_stale_list_is_dropped(self, synced, sandbox):
        credential, api_key = next(sync.stored_keys())
        workspace = SyncKey.objects.get().workspace
        workspace.list_started_at = workspace.list_started_at.replace(year=2999)
        workspace.save()
        rename(sandbox, fine_tuned(sandbox)["id"], "stale")
        assert sync.sync_key(credential, api_key).status == "stale"
        assert outside() == []
        assert ModelSnapshot.objects.filter(name="stale").count() == 0


class TestHostileCards:
    def test_hostile_strings_are_stored_safely_and_compared_as_stored(self, synced, sandbox):
        hostile = "nul\x00 and ünïcode"
        added = upstream(sandbox, "POST", "/_sandbox/models", json={"name": "hostile"})
        workspace = sandbox.state.workspace(ALICE_KEY)
        workspace.put({**added, "name": hostile, "description": f"described: {hostile}"})
        no_id = {k: v for k, v in added.items() if k != "id"}
        workspace.put_without_id({**no_id, "name": "no id"})  # can't be told apart: left out
        run_sync()
        (entry,) = outside()
        assert entry.target_name == "nul\ufffd and ünïcode"
        snapshot = ModelSnapshot.objects.get(model_id=added["id"])
        assert snapshot.description == "described: nul\ufffd and ünïcode"
        run_sync()  # the stored fields equal the listed ones once cleaned: no change
        assert len(outside()) == 1
        assert_chain_ok()

    def test_a_plain_list_is_stored_as_sent_but_for_an_overlong_id(self, synced, sandbox):
        """A body without escapes skips the cleaning of each string: raw UTF-8 is
        stored as sent, an id longer than the column is still cut, and the next list
        compares equal to what was stored."""
        added = upstream(sandbox, "POST", "/_sandbox/models", json={"name": "plain"})
        workspace = sandbox.state.workspace(ALICE_KEY)
        long_id = "ft:" + "x" * 400
        workspace.put({**added, "id": long_id, "name": "ünïcode, raw", "description": "ß"})
        assert b"\\u" not in upstream_body(sandbox)
        run_sync()
        appeared = outside()  # the model added, and the one put under the long id
        assert [entry.action for entry in appeared] == [Action.MODEL_APPEAR] * 2
        snapshot = ModelSnapshot.objects.get(model_id__startswith="ft:xxx")
        assert len(snapshot.model_id) == sync.ID_LENGTH
        assert snapshot.model_id.endswith("x…")
        assert (snapshot.name, snapshot.description) == ("ünïcode, raw", "ß")
        run_sync()
        assert len(outside()) == 2
