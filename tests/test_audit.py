"""The audit trail: what is recorded, write-ahead outcomes, append-only storage, the
hash chain, reconciliation, and the review pages."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains, assertTemplateUsed

from models_admin import audit, audit_chain, audit_hash, audit_sql, reconcile, roles, signals
from models_admin.audit import Action, Actor, Kind, Outcome
from models_admin.models import AppendOnlyError, AuditChainHead, AuditEntry
from tests.conftest import ALICE_KEY, BOB_KEY, CAROL_KEY, make_user
from tests.helpers import HTMX, fine_tuned, url


def delete(client, model_id: str, reason: str = "obsolete since v3", **headers):
    return client.post(
        url("model_delete", model_id), {"confirm_id": model_id, "reason": reason}, headers=headers
    )


def entries(**filters) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(**filters).order_by("seq"))


def verify() -> audit_chain.ChainReport:
    return audit_chain.verify_chain()


def append_event(actor_user: User, n: int = 1, **fields) -> list[AuditEntry]:
    actor = Actor(user=actor_user, ip="127.0.0.1")
    return [
        audit.event(
            actor=actor,
            action=fields.get("action", Action.MEMBER_ROLE),
            target_id=fields.get("target_id", f"user-{i}"),
        )
        for i in range(n)
    ]


class TestModelDelete:
    def test_a_delete_through_the_page_leaves_a_complete_entry(self, as_alice, alice, sandbox):
        ft = fine_tuned(sandbox)
        as_alice.get(url("model_list"))  # the cached inventory gives the attempt a card too

        response = delete(as_alice, ft["id"], HTTP_USER_AGENT="pytest-browser/1.0", **HTMX)

        attempt, outcome = entries()
        assert attempt.kind == Kind.ATTEMPT and outcome.kind == Kind.OUTCOME
        assert outcome.attempt == attempt
        for entry in (attempt, outcome):
            assert entry.action == Action.MODEL_DELETE
            assert entry.actor == alice
            assert (entry.actor_username, entry.actor_email, entry.actor_role) == (
                "alice",
                "alice@example.com",
                "team_admin",
            )
            assert entry.target_id == ft["id"]
            assert entry.target_name == ft["name"]
            assert entry.ip == "127.0.0.1"
            assert entry.request_id == response["X-Request-ID"]
            assert entry.credential_id == alice.api_credential.pk
            assert entry.credential_masked == alice.api_credential.key_masked
            assert (
                ALICE_KEY not in json.dumps(entry.before) + entry.credential_masked + entry.message
            )
        assert attempt.reason == "obsolete since v3"
        assert attempt.outcome == Outcome.UNKNOWN  # as written ahead of the call
        assert outcome.outcome == Outcome.SUCCEEDED
        assert outcome.before["id"] == ft["id"] and outcome.before["job"] == ft["job"]
        assert attempt.before["root"] == ft["root"]
        assert attempt.created_at <= outcome.created_at
        assert verify().ok

    def test_the_attempt_is_written_before_the_upstream_call(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        arrivals = []
        original = sandbox.state.faults.plan

        def plan(method, path):  # observe when the sandbox receives the delete
            if method == "DELETE":
                arrivals.append(timezone.now())
            return original(method, path)

        sandbox.state.faults.plan = plan
        try:
            delete(as_alice, ft["id"], **HTMX)
        finally:
            del sandbox.state.faults.plan

        attempt, outcome = entries()
        assert attempt.created_at <= arrivals[0] <= outcome.created_at

    def test_a_failed_delete_is_recorded_as_failed(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        sandbox.state.faults.set(fail_status=503, fail_times=10, match="DELETE")

        delete(as_alice, ft["id"], **HTMX)

        attempt, outcome = entries()
        assert outcome.outcome == Outcome.FAILED
        assert outcome.upstream_status == 503
        assert "HTTP 503" in outcome.message
        assert ft["id"] in sandbox.state.workspace(ALICE_KEY).models

    def test_a_refused_delete_keeps_mistrals_words_and_request_id(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        body = {"message": "Model is in use by a deployment", "request_id": "f" * 32}
        sandbox.state.faults.set(fail_status=409, fail_times=1, fail_body=body, match="DELETE")

        delete(as_alice, ft["id"], **HTMX)

        outcome = entries(kind=Kind.OUTCOME)[0]
        assert (outcome.outcome, outcome.upstream_status, outcome.upstream_request_id) == (
            Outcome.FAILED,
            409,
            "f" * 32,
        )
        assert "Model is in use by a deployment" in outcome.message

    def test_a_timed_out_delete_is_settled_by_reading_the_model_back(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        # Mistral deletes, but every answer comes too late.
        sandbox.state.faults.set(hang_s=3, hang_times=10, hang_after=True, match="DELETE")

        response = delete(as_alice, ft["id"], **HTMX)

        assert response.status_code == 200
        outcome = entries(kind=Kind.OUTCOME)[0]
        assert outcome.outcome == Outcome.SUCCEEDED
        assert outcome.message.startswith("Confirmed by reading the model back")
        assert [r.method for r in sandbox.state.requests][-1] == "GET"  # the read-back
        assert verify().ok

    def test_a_lost_answer_whose_delete_did_not_happen_is_failed(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        # A gateway timeout: ambiguous, but the model is still there when read back.
        sandbox.state.faults.set(fail_status=504, fail_times=10, match="DELETE")

        response = delete(as_alice, ft["id"], **HTMX)

        assertContains(response, "HTTP 504")
        outcome = entries(kind=Kind.OUTCOME)[0]
        assert outcome.outcome == Outcome.FAILED
        assert "Reading the model back showed the model still exists" in outcome.message

    def test_an_attempt_whose_process_died_reads_as_unknown(
        self, as_alice, alice, carol, sandbox, client
    ):
        ft = fine_tuned(sandbox)
        # What a worker killed mid-call leaves behind: the attempt, and nothing after it.
        audit.append(
            kind=Kind.ATTEMPT,
            action=Action.MODEL_DELETE,
            outcome=Outcome.UNKNOWN,
            actor=Actor(user=alice),
            target_id=ft["id"],
            reason="cleanup",
            credential=alice.api_credential,
        )
        sandbox.state.workspace(ALICE_KEY).delete(ft["id"])

        page = as_alice.get(url("audit_list"))
        assertContains(page, "outcome-unknown")
        call_command("reconcile_audit", "--min-age", "0", stdout=io.StringIO())

        assertContains(as_alice.get(url("audit_list"), {"outcome": "succeeded"}), ft["id"])
        assertNotContains(as_alice.get(url("audit_list"), {"outcome": "unknown"}), ft["id"])

    def test_young_unknown_attempts_are_left_alone(self, alice, sandbox):
        audit.append(
            kind=Kind.ATTEMPT,
            action=Action.MODEL_DELETE,
            outcome=Outcome.UNKNOWN,
            actor=Actor(user=alice),
            target_id=fine_tuned(sandbox)["id"],
        )

        call_command("reconcile_audit", stdout=io.StringIO())  # default --min-age 300

        assert entries(kind=Kind.OUTCOME) == []

    def test_a_member_who_posts_a_delete_is_denied_and_recorded(self, client, bob, sandbox):
        client.force_login(bob)
        ft = fine_tuned(sandbox, BOB_KEY)

        response = delete(client, ft["id"])

        assert response.status_code == 403
        (entry,) = entries()
        assert (entry.kind, entry.action, entry.outcome) == (
            Kind.EVENT,
            Action.MODEL_DELETE,
            Outcome.DENIED,
        )
        assert (entry.actor_username, entry.actor_role, entry.target_id) == (
            "bob",
            "member",
            ft["id"],
        )
        assert ft["id"] in sandbox.state.workspace(BOB_KEY).models

    def test_a_delete_without_a_key_is_recorded(self, client, db, sandbox):
        dora = make_user("dora", roles.Role.TEAM_ADMIN)
        client.force_login(dora)

        delete(client, "ft:open-mistral-7b:aaaaaaaa:20250101:bbbbbbbb")

        attempt, outcome = entries()
        assert outcome.outcome == Outcome.FAILED
        assert "Add your Mistral API key" in outcome.message
        assert attempt.credential_id is None


class TestOtherChanges:
    def test_rename_records_the_diff_and_the_card(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        seen = json.dumps({"name": ft["name"], "description": ft["description"]})

        as_alice.post(
            url("model_edit", ft["id"]),
            {"name": "triage-v5", "description": "", "expected": seen},
            headers=HTMX,
        )

        attempt, outcome = entries()
        assert attempt.changes["name"] == [ft["name"], "triage-v5"]
        assert outcome.changes["name"] == [ft["name"], "triage-v5"]
        assert outcome.before["name"] == ft["name"]
        assert outcome.target_name == "triage-v5"

    def test_a_rejected_rename_is_failed_with_the_reason(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        seen = json.dumps({"name": ft["name"], "description": ft["description"]})
        sandbox.state.faults.set(fail_status=422, fail_times=1, match="PATCH")

        as_alice.post(
            url("model_edit", ft["id"]),
            {"name": "x", "description": "", "expected": seen},
            headers=HTMX,
        )

        assert entries(kind=Kind.OUTCOME)[0].outcome == Outcome.FAILED
        assert entries(kind=Kind.OUTCOME)[0].upstream_status == 422

    @pytest.mark.parametrize(
        ("action", "archived"), [(Action.MODEL_ARCHIVE, False), (Action.MODEL_UNARCHIVE, True)]
    )
    def test_archive_and_unarchive(self, as_alice, sandbox, action, archived):
        ft = fine_tuned(sandbox, archived=archived)
        view = "model_row_archive" if action == Action.MODEL_ARCHIVE else "model_row_unarchive"

        as_alice.post(url(view, ft["id"]), headers=HTMX)

        attempt, outcome = entries()
        assert attempt.action == outcome.action == action
        assert outcome.changes == {"archived": [archived, not archived]}

    def test_an_auditors_archive_is_denied(self, client, carol, sandbox):
        client.force_login(carol)

        client.post(url("model_archive", fine_tuned(sandbox, CAROL_KEY)["id"]))

        assert [(e.action, e.outcome) for e in entries()] == [
            (Action.MODEL_ARCHIVE, Outcome.DENIED)
        ]

    def test_api_key_changes_are_recorded_masked(self, client, charlie, sandbox):
        client.force_login(charlie)
        key, other = "sandbox-charlie-first-key-0001", "sandbox-charlie-second-key-0002"

        client.post(url("api_key"), {"api_key": key})
        client.post(url("api_key"), {"api_key": other})
        client.post(url("api_key_remove"))

        added, replaced, removed = entries()
        assert [e.action for e in (added, replaced, removed)] == [
            Action.API_KEY_ADD,
            Action.API_KEY_REPLACE,
            Action.API_KEY_REMOVE,
        ]
        assert replaced.changes == {"key": ["sand…0001", "sand…0002"]}
        dumped = json.dumps(
            [
                [e.changes, e.message, e.credential_masked, e.details]
                for e in (added, replaced, removed)
            ]
        )
        assert key not in dumped and other not in dumped

    def test_team_changes_are_recorded(self, as_alice, bob):
        as_alice.post(url("team_role", bob.pk), {"role": "auditor"})
        as_alice.post(url("team_active", bob.pk), {"active": "0"})
        as_alice.post(
            url("team_add"),
            {"username": "erin", "email": "erin@example.com", "role": "member", "password": ""},
        )

        role, deactivate, add, link = entries()
        assert (role.action, role.target_id, role.changes) == (
            Action.MEMBER_ROLE,
            "bob",
            {"role": ["member", "auditor"]},
        )
        assert deactivate.action == Action.MEMBER_DEACTIVATE
        assert (add.action, add.target_id) == (Action.MEMBER_ADD, "erin")
        assert (link.action, link.target_id) == (Action.MEMBER_PASSWORD_LINK, "erin")

    def test_history_survives_the_actors_deletion(self, as_alice, bob, sandbox):
        append_event(bob, 2)

        bob.delete()

        first, second, deletion = entries()
        assert first.actor is None and first.actor_username == "bob"
        assert (deletion.action, deletion.target_id) == (Action.USER_DELETE, "bob")
        assert verify().ok


class TestAppendOnly:
    def test_the_orm_refuses_changes(self, alice):
        (entry,) = append_event(alice)

        with pytest.raises(AppendOnlyError):
            entry.save()
        with pytest.raises(AppendOnlyError):
            entry.delete()
        with pytest.raises(AppendOnlyError):
            AuditEntry.objects.filter(pk=entry.pk).update(reason="x")
        with pytest.raises(AppendOnlyError):
            AuditEntry.objects.all().delete()

    @pytest.mark.parametrize(
        "sql",
        [
            "UPDATE models_admin_auditentry SET reason = 'edited' WHERE seq = 1",
            "UPDATE models_admin_auditentry SET actor_id = NULL, reason = 'sneaky' WHERE seq = 1",
            "UPDATE models_admin_auditentry SET outcome = 'succeeded'",
            "DELETE FROM models_admin_auditentry WHERE seq = 1",
            "DELETE FROM models_admin_auditentry",
        ],
    )
    def test_the_database_refuses_raw_sql(self, alice, sql):
        append_event(alice)

        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)

        assert AuditEntry.objects.get(seq=1).reason == ""

    def test_postgresql_refuses_truncate(self, alice):
        if connection.vendor != "postgresql":
            pytest.skip("TRUNCATE is PostgreSQL's")
        append_event(alice)

        with connection.cursor() as cursor:
            # Fire the deferred foreign-key checks of the inserts first, which would
            # otherwise refuse the TRUNCATE for a reason of their own.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("TRUNCATE models_admin_auditentry CASCADE")

    def test_clearing_a_deleted_actor_is_the_one_update_allowed(self, alice):
        append_event(alice)

        with connection.cursor() as cursor:
            cursor.execute("UPDATE models_admin_auditentry SET actor_id = NULL WHERE seq = 1")

        assert AuditEntry.objects.get(seq=1).actor_id is None
        # Allowed for a deleted user's entries; alice still exists, so the chain says so.
        assert "actor link was changed" in verify().problem
        with signals.recorded_by_service():
            alice.delete()
        assert verify().ok

    def test_admin_is_read_only(self, client, db):
        with signals.recorded_by_service():
            admin_user = User.objects.create_superuser("root", "root@example.com", "root-password")
        append_event(admin_user)
        client.force_login(admin_user)

        changelist = client.get("/admin/models_admin/auditentry/")
        change = client.get(f"/admin/models_admin/auditentry/{AuditEntry.objects.get().pk}/change/")
        deletion = client.post(
            f"/admin/models_admin/auditentry/{AuditEntry.objects.get().pk}/delete/", {"post": "yes"}
        )

        assert changelist.status_code == 200
        assertContains(changelist, "member.role")
        assertNotContains(change, 'name="_save"')
        assert deletion.status_code == 403
        assert client.get("/admin/models_admin/auditentry/add/").status_code == 403


@pytest.fixture
def tamperable(alice):
    """Ten entries, with the triggers off so raw SQL can tamper like an attacker with DB access."""
    append_event(alice, 10)
    audit_sql.drop(connection)
    yield
    audit_sql.install(connection, [f.column for f in AuditEntry._meta.local_fields])


def run_verify() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_audit_chain", stdout=out)
    except CommandError as exc:
        return 1, str(exc)
    return 0, out.getvalue()


class TestHashChain:
    def test_an_intact_chain_verifies(self, alice):
        append_event(alice, 5)

        code, said = run_verify()

        assert code == 0
        assert "5 entries verified" in said

    def test_the_chain_links_every_entry(self, alice):
        first, second, third = append_event(alice, 3)

        assert [e.seq for e in (first, second, third)] == [1, 2, 3]
        assert first.prev_hash == audit_hash.GENESIS
        assert second.prev_hash == first.hash and third.prev_hash == second.hash
        assert AuditChainHead.objects.get().seq == 3

    def test_the_hmac_depends_on_the_key(self, alice, settings):
        append_event(alice)

        settings.AUDIT_HMAC_KEY = "another-key"

        assert not verify().ok

    def test_an_altered_row_is_caught(self, tamperable):
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE models_admin_auditentry SET target_id = 'someone-else' WHERE seq = 4"
            )

        code, said = run_verify()

        assert code == 1
        assert "entry #4" in said and "altered" in said

    def test_an_altered_row_with_a_recomputed_plain_hash_is_caught(self, tamperable):
        # Without AUDIT_HMAC_KEY, nobody can forge a matching hash.
        import hashlib

        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE models_admin_auditentry SET outcome = 'denied', hash = %s WHERE seq = 6",
                [hashlib.sha256(b"forged").hexdigest()],
            )

        code, said = run_verify()

        assert code == 1
        assert "#6" in said

    def test_a_removed_row_is_caught(self, tamperable):
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM models_admin_auditentry WHERE seq = 5")

        code, said = run_verify()

        assert code == 1
        assert "entry #5 is missing" in said

    def test_removing_the_last_rows_is_caught(self, tamperable):
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM models_admin_auditentry WHERE seq >= 9")

        code, said = run_verify()

        assert code == 1
        assert "#9 to #10 were removed" in said

    def test_reordered_rows_are_caught(self, tamperable):
        with connection.cursor() as cursor:
            cursor.execute("UPDATE models_admin_auditentry SET seq = 1000 WHERE seq = 3")
            cursor.execute("UPDATE models_admin_auditentry SET seq = 3 WHERE seq = 7")
            cursor.execute("UPDATE models_admin_auditentry SET seq = 7 WHERE seq = 1000")

        code, said = run_verify()

        assert code == 1
        assert "entry #3" in said

    def test_appends_continue_the_chain_after_a_flushed_head(self, alice):
        append_event(alice, 2)
        AuditChainHead.objects.all().delete()

        (entry,) = append_event(alice)

        assert entry.seq == 3
        assert verify().ok


class TestReviewPage:
    def test_team_admins_and_auditors_read_it_members_do_not(self, client, alice, bob, carol):
        for user, status in ((alice, 200), (carol, 200), (bob, 403)):
            client.force_login(user)
            assert client.get(url("audit_list")).status_code == status
            assert client.get(url("audit_deleted")).status_code == status
            assert client.get(url("audit_export_csv")).status_code == status

    def test_it_requires_login(self, client, db):
        assert client.get(url("audit_list")).status_code == 302

    def test_newest_first_with_filters(self, as_alice, alice, bob):
        append_event(alice, 3, action=Action.MEMBER_ROLE)
        audit.denied(actor=Actor(user=bob), action=Action.MODEL_DELETE, target_id="ft:x:y:z:w")

        everything = as_alice.get(url("audit_list"))
        by_actor = as_alice.get(url("audit_list"), {"actor": "bob"})
        by_outcome = as_alice.get(url("audit_list"), {"outcome": "denied"}, headers=HTMX)
        by_action = as_alice.get(url("audit_list"), {"action": "member.role"})
        by_target = as_alice.get(url("audit_list"), {"target": "ft:x:y:z:w"})
        by_search = as_alice.get(url("audit_list"), {"q": "USER-1"})

        assert [e.seq for e in everything.context["page"].entries] == [4, 3, 2, 1]
        assert [e.seq for e in by_actor.context["page"].entries] == [4]
        assertTemplateUsed(by_outcome, "models_admin/_audit_table.html")
        assert [e.seq for e in by_outcome.context["page"].entries] == [4]
        assert [e.seq for e in by_action.context["page"].entries] == [3, 2, 1]
        assert [e.seq for e in by_target.context["page"].entries] == [4]
        assert [e.seq for e in by_search.context["page"].entries] == [2]

    def test_a_filtered_table_brings_export_links_for_the_same_filters(self, as_alice, alice):
        append_event(alice, 1)

        full = as_alice.get(url("audit_list"), {"outcome": "denied"}).content.decode()
        partial = as_alice.get(
            url("audit_list"), {"outcome": "denied", "before": 9}, headers=HTMX
        ).content.decode()

        assert full.count('id="export-csv"') == 1
        assert "hx-swap-oob" not in full
        # The htmx swap replaces the table; the header's links follow out of band.
        assert 'id="audit-exports" class="actions" hx-swap-oob="true"' in partial
        assert f'href="{url("audit_export_csv")}?outcome=denied"' in partial
        assert f'href="{url("audit_export_ndjson")}?outcome=denied"' in partial

    def test_export_links_are_offered_to_those_who_may_export(self, client, alice, carol):
        for user in (alice, carol):
            client.force_login(user)
            page = client.get(url("audit_list")).content.decode()
            assert ('id="export-csv"' in page) == user.has_perm("models_admin.export_auditentry")

    def test_date_range(self, as_alice, alice):
        append_event(alice, 1)
        today = timezone.now().date()

        within = as_alice.get(
            url("audit_list"), {"since": today.isoformat(), "until": today.isoformat()}
        )
        before = as_alice.get(url("audit_list"), {"until": (today - timedelta(days=1)).isoformat()})

        assert len(within.context["page"].entries) == 1
        assert before.context["page"].entries == []

    def test_keyset_pages(self, as_alice, alice):
        append_event(alice, 120)

        first = as_alice.get(url("audit_list")).context["page"]
        second = as_alice.get(url("audit_list"), {"before": first.older}).context["page"]
        third = as_alice.get(url("audit_list"), {"before": second.older}).context["page"]
        back = as_alice.get(url("audit_list"), {"after": third.newer}).context["page"]

        assert [e.seq for e in first.entries] == list(range(120, 70, -1))
        assert first.newer is None
        assert [e.seq for e in second.entries] == list(range(70, 20, -1))
        assert [e.seq for e in third.entries] == list(range(20, 0, -1))
        assert third.older is None
        assert [e.seq for e in back.entries] == [e.seq for e in second.entries]

    def test_the_page_costs_a_constant_number_of_queries(
        self, as_alice, alice, django_assert_max_num_queries
    ):
        append_event(alice, 60)

        with django_assert_max_num_queries(8):
            as_alice.get(url("audit_list"))

    def test_the_entry_detail_shows_the_diff_and_the_snapshot(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        seen = json.dumps({"name": ft["name"], "description": ft["description"]})
        as_alice.post(
            url("model_edit", ft["id"]),
            {"name": "renamed-v2", "description": "", "expected": seen},
            headers=HTMX,
        )
        attempt = entries(kind=Kind.ATTEMPT)[0]

        response = as_alice.get(url("audit_detail", attempt.seq))

        assertContains(response, "renamed-v2")
        assertContains(response, ft["name"])
        assertContains(response, 'class="old"')
        assertContains(response, ft["job"])  # from the before-snapshot
        assertContains(response, attempt.hash)

    def test_deleted_models(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        delete(as_alice, ft["id"], reason="superseded by v9")

        response = as_alice.get(url("audit_deleted"))

        assertContains(response, ft["id"])
        assertContains(response, "superseded by v9")
        assertContains(response, "alice")
        assertContains(response, ft["job"])


class TestExport:
    def _seed(self, as_alice, sandbox):
        ft = fine_tuned(sandbox)
        delete(as_alice, ft["id"], reason='=HYPERLINK("http://evil")')
        return ft

    def test_csv_is_streamed_filtered_and_recorded(self, as_alice, sandbox, alice):
        ft = self._seed(as_alice, sandbox)
        append_event(alice, 2)

        response = as_alice.get(url("audit_export_csv"), {"action": "model.delete"})

        assert response.streaming
        assert response["Content-Type"].startswith("text/csv")
        assert "attachment" in response["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert [(r["action"], r["target_id"], r["outcome"]) for r in rows] == [
            ("model.delete", ft["id"], "succeeded")
        ]
        assert rows[0]["reason"].startswith("'=")  # never a live spreadsheet formula
        assert json.loads(rows[0]["before"])["id"] == ft["id"]
        export = entries(action=Action.AUDIT_EXPORT)[0]
        assert export.details == {"format": "csv", "filters": {"action": "model.delete"}}

    def test_ndjson(self, as_alice, sandbox):
        ft = self._seed(as_alice, sandbox)

        response = as_alice.get(url("audit_export_ndjson"), {"q": ft["id"]})

        lines = [
            json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
        ]
        assert [(r["action"], r["outcome"], r["resolved_by_seq"]) for r in lines] == [
            ("model.delete", "succeeded", 2)
        ]

    def test_members_cannot_export_and_are_recorded(self, client, bob):
        client.force_login(bob)

        assert client.get(url("audit_export_csv")).status_code == 403
        assert client.get(url("audit_export_ndjson")).status_code == 403
        assert [(e.action, e.outcome) for e in entries()] == [
            (Action.AUDIT_EXPORT, Outcome.DENIED)
        ] * 2


class TestReconcile:
    """Each verdict reconcile_audit can reach, from the model as Mistral shows it now."""

    def unknown(self, user, action, target_id, **fields) -> AuditEntry:
        """What a process killed mid-call leaves: an attempt with no outcome."""
        return audit.append(
            kind=Kind.ATTEMPT,
            action=action,
            outcome=Outcome.UNKNOWN,
            actor=Actor(user=user),
            target_id=target_id,
            **fields,
        )

    def run(self, *, dry_run: bool = False) -> list[reconcile.Reconciled]:
        return reconcile.reconcile_unknown(
            older_than=timezone.now() + timedelta(seconds=1), dry_run=dry_run
        )

    @pytest.mark.parametrize(
        ("action", "archived", "verdict"),
        [
            (Action.MODEL_ARCHIVE, True, Outcome.SUCCEEDED),
            (Action.MODEL_ARCHIVE, False, Outcome.FAILED),
            (Action.MODEL_UNARCHIVE, False, Outcome.SUCCEEDED),
            (Action.MODEL_UNARCHIVE, True, Outcome.FAILED),
        ],
    )
    def test_archive_and_unarchive(self, alice, sandbox, action, archived, verdict):
        ft = fine_tuned(sandbox, archived=archived)
        attempt = self.unknown(alice, action, ft["id"])

        (result,) = self.run()

        assert (result.attempt_seq, result.verdict) == (attempt.seq, verdict)
        assert ("as asked" in result.note) == (verdict == Outcome.SUCCEEDED)
        outcome = entries(kind=Kind.OUTCOME)[0]
        assert (outcome.attempt, outcome.outcome) == (attempt, verdict)
        assert outcome.credential_id == alice.api_credential.pk
        assert outcome.message == f"Reconciled: {result.note}."
        assert "current state read at" in result.note

    @pytest.mark.parametrize(
        ("current", "verdict"),
        [
            ("triage-v5", Outcome.SUCCEEDED),
            ("triage-v4", Outcome.FAILED),
            ("someone-elses-name", Outcome.UNDETERMINED),
        ],
    )
    def test_update(self, alice, sandbox, current, verdict):
        ft = fine_tuned(sandbox)
        sandbox.state.workspace(ALICE_KEY).update(ft["id"], {"name": current})
        self.unknown(
            alice, Action.MODEL_UPDATE, ft["id"], changes={"name": ["triage-v4", "triage-v5"]}
        )

        (result,) = self.run()

        assert result.verdict == verdict
        assert [o.outcome for o in entries(kind=Kind.OUTCOME)] == [verdict]

    def test_a_change_to_a_model_now_gone_is_undetermined(self, alice, sandbox):
        self.unknown(alice, Action.MODEL_ARCHIVE, "ft:gone:a:b:c")

        (result,) = self.run()

        assert result.verdict == Outcome.UNDETERMINED
        assert "The model is gone" in result.note
        assert [o.outcome for o in entries(kind=Kind.OUTCOME)] == [Outcome.UNDETERMINED]
        assert self.run() == []  # final: never looked at again

    def test_without_the_actors_key_mistral_cannot_be_asked(self, alice, charlie, sandbox):
        self.unknown(charlie, Action.MODEL_DELETE, fine_tuned(sandbox)["id"])

        (result,) = self.run()

        assert result.verdict == Outcome.UNKNOWN
        assert result.note == "Could not ask Mistral: Add your Mistral API key first."
        assert requests_made(sandbox) == 0

    def test_without_the_actors_account_there_is_no_key(self, alice, bob, sandbox):
        self.unknown(bob, Action.MODEL_DELETE, fine_tuned(sandbox, BOB_KEY)["id"])
        bob.delete()

        (result,) = self.run()

        assert result.verdict == Outcome.UNDETERMINED
        assert "account is gone" in result.note

    def test_a_dry_run_appends_nothing(self, alice, sandbox):
        self.unknown(alice, Action.MODEL_ARCHIVE, fine_tuned(sandbox, archived=True)["id"])

        (result,) = self.run(dry_run=True)

        assert result.verdict == Outcome.SUCCEEDED
        assert entries(kind=Kind.OUTCOME) == []


def requests_made(sandbox) -> int:
    return len(sandbox.state.requests)
