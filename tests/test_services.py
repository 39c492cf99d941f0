"""The services called directly (as views, bulk jobs and commands call them), against
the sandbox over real HTTP: API keys, the upstream session, the model changes and
their dispatcher, recorded denials, the audit reads and the team."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import PermissionDenied
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from models_admin import audit, remote, roles, services
from models_admin.audit import Action, Actor, Kind, Outcome
from models_admin.models import ApiCredential, AuditEntry
from tests.conftest import ALICE_KEY, CAROL_KEY

NEW_KEY = "sandbox-charlie-services-key-0042"


def card(sandbox, key: str = ALICE_KEY, **wanted) -> dict:
    """The first model of the key's workspace whose fields have the ``wanted`` values."""
    models = sandbox.state.workspace(key).models.values()
    return next(c for c in models if all(c.get(k) == v for k, v in wanted.items()))


def requests(sandbox, method: str | None = None) -> list[tuple[str, str]]:
    return [
        (r.method, r.path) for r in sandbox.state.requests if method is None or r.method == method
    ]


def entries(**filters) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(**filters).order_by("seq"))


def as_(user) -> Actor:
    return Actor(user=user)


class TestCredentials:
    def test_saving_checks_the_key_and_primes_the_cache(self, charlie, sandbox):
        credential = services.credential_save(actor=as_(charlie), api_key=NEW_KEY)

        assert credential.get_key() == NEW_KEY and credential.verified_at is not None
        assert requests(sandbox) == [("GET", "/v1/models")]
        inventory = services.models_inventory(actor=as_(charlie))
        assert inventory.rows
        assert requests(sandbox) == [("GET", "/v1/models")]  # served from the cache
        (added,) = entries()
        assert (added.action, added.changes) == (
            Action.API_KEY_ADD,
            {"key": [None, credential.key_masked]},
        )

    def test_a_rejected_key_is_not_stored_and_the_failure_is_recorded(self, charlie, sandbox):
        sandbox.state.faults.set(fail_status=401, fail_times=1)

        with pytest.raises(remote.ApiAuthFailed):
            services.credential_save(actor=as_(charlie), api_key=NEW_KEY)

        assert not ApiCredential.objects.filter(user=charlie).exists()
        (failed,) = entries()
        assert (failed.action, failed.outcome, failed.upstream_status) == (
            Action.API_KEY_ADD,
            Outcome.FAILED,
            401,
        )

    def test_an_unchecked_key_is_saved_without_asking_mistral(self, charlie, sandbox):
        credential = services.credential_save(actor=as_(charlie), api_key=NEW_KEY, verify=False)

        assert credential.verified_at is None
        assert requests(sandbox) == []
        assert "without checking" in entries()[0].message

    def test_replacing_a_key_forgets_the_old_keys_inventory(self, alice, sandbox):
        services.models_inventory(actor=as_(alice))

        services.credential_save(actor=as_(alice), api_key=NEW_KEY, verify=False)
        services.credential_save(actor=as_(alice), api_key=ALICE_KEY, verify=False)
        services.models_inventory(actor=as_(alice))

        assert requests(sandbox) == [("GET", "/v1/models")] * 2
        assert [e.action for e in entries()] == [Action.API_KEY_REPLACE] * 2

    def test_removing(self, alice, charlie, sandbox):
        assert services.credential_remove(actor=as_(alice)) is True
        assert services.credential_remove(actor=as_(charlie)) is False

        assert services.credential_get(user=alice) is None
        (removed,) = entries()
        assert (removed.action, removed.actor_username) == (Action.API_KEY_REMOVE, "alice")


class TestUpstreamSession:
    def test_it_needs_a_key(self, charlie):
        with pytest.raises(services.MissingApiKey):
            services.upstream_session(charlie)

    def test_it_needs_a_key_it_can_decrypt(self, alice, settings):
        settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

        with pytest.raises(services.UndecryptableApiKey):
            services.upstream_session(alice)

    def test_it_calls_mistral_with_the_users_own_key(self, alice, bob, sandbox):
        alices = services.upstream_session(alice).inventory()
        bobs = services.upstream_session(bob).inventory()

        assert {r.id for r in alices.rows}.isdisjoint(
            {r.id for r in bobs.rows if r.card.is_fine_tuned}
        )
        assert len({r.key_fingerprint for r in sandbox.state.requests}) == 2

    def test_a_pinned_inventory_spares_a_read_per_model(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned", archived=False)
        session = services.upstream_session(alice)
        session.pin_inventory()

        assert session.current_card(ft["id"]).id == ft["id"]
        assert requests(sandbox) == [("GET", "/v1/models")]

    def test_a_change_makes_the_cached_card_stale(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned", archived=False)
        session = services.upstream_session(alice)
        session.pin_inventory()

        session.changed(ft["id"])

        assert session.known_card(ft["id"]) is None
        assert session.cached_inventory() is None
        assert session.current_card(ft["id"]).id == ft["id"]
        assert requests(sandbox) == [("GET", "/v1/models"), ("GET", f"/v1/models/{ft['id']}")]

    def test_a_model_missing_from_the_pinned_inventory_is_read(self, alice, sandbox):
        session = services.upstream_session(alice)
        session.pin_inventory()

        with pytest.raises(remote.ModelNotFound):
            session.current_card("ft:created:after:the:pin")

        assert requests(sandbox) == [
            ("GET", "/v1/models"),
            ("GET", "/v1/models/ft:created:after:the:pin"),
        ]

    def test_its_repr_names_the_credential_never_the_key(self, alice):
        assert repr(services.upstream_session(alice)) == (
            f"<UpstreamSession with credential #{alice.api_credential.pk}>"
        )
        assert repr(services.UpstreamSession(NEW_KEY)) == "<UpstreamSession with an unsaved key>"


class TestModelChanges:
    def test_update(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned")

        updated = services.model_update(
            actor=as_(alice),
            model_id=ft["id"],
            name="renamed",
            description=ft["description"],
            expected_name=ft["name"],
            expected_description=ft["description"],
        )

        assert updated.name == "renamed"
        assert requests(sandbox, "PATCH") == [("PATCH", f"/v1/fine_tuning/models/{ft['id']}")]
        attempt, outcome = entries()
        assert outcome.changes == {"name": [ft["name"], "renamed"]}
        assert outcome.before["name"] == ft["name"]

    def test_update_refuses_a_model_changed_meanwhile(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned")

        with pytest.raises(services.EditConflict) as conflict:
            services.model_update(
                actor=as_(alice),
                model_id=ft["id"],
                name="mine",
                description=None,
                expected_name="what I saw",
                expected_description=None,
            )

        assert conflict.value.current.name == ft["name"]
        assert requests(sandbox, "PATCH") == []
        assert entries(kind=Kind.OUTCOME)[0].outcome == Outcome.FAILED

    def test_update_with_nothing_to_change_sends_nothing(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned")

        services.model_update(
            actor=as_(alice),
            model_id=ft["id"],
            name=ft["name"],
            description=ft["description"],
            expected_name=ft["name"],
            expected_description=ft["description"],
        )

        assert requests(sandbox, "PATCH") == []
        assert entries(kind=Kind.OUTCOME)[0].message == "Nothing to change."

    @pytest.mark.parametrize("archived", [False, True])
    def test_archive_and_unarchive(self, alice, sandbox, archived):
        ft = card(sandbox, type="fine-tuned", archived=archived)
        service = services.model_unarchive if archived else services.model_archive

        result = service(actor=as_(alice), model_id=ft["id"])

        assert result.archived is not archived
        assert sandbox.state.workspace(ALICE_KEY).get(ft["id"])["archived"] is not archived
        outcome = entries(kind=Kind.OUTCOME)[0]
        assert outcome.changes == {"archived": [archived, not archived]}

    def test_archiving_an_archived_model_sends_nothing(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned", archived=True)

        services.model_archive(actor=as_(alice), model_id=ft["id"])

        assert requests(sandbox, "POST") == []
        assert entries(kind=Kind.OUTCOME)[0].message == "It already was."

    def test_base_models_are_not_changed(self, alice, sandbox):
        base = card(sandbox, type="base")

        with pytest.raises(services.NotFineTuned):
            services.model_archive(actor=as_(alice), model_id=base["id"])

        assert requests(sandbox, "POST") == []
        attempt, outcome = entries()
        assert outcome.outcome == Outcome.FAILED and outcome.before["id"] == base["id"]

    def test_delete(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned")
        services.models_inventory(actor=as_(alice))

        services.model_delete(actor=as_(alice), model_id=ft["id"], reason="superseded")

        assert ft["id"] not in sandbox.state.workspace(ALICE_KEY).models
        attempt, outcome = entries()
        assert attempt.reason == "superseded"
        assert attempt.target_name == ft["name"]  # from the cached inventory, written ahead
        assert outcome.outcome == Outcome.SUCCEEDED
        # The cache was forgotten: the next list is read from Mistral.
        services.models_inventory(actor=as_(alice))
        assert requests(sandbox, "GET").count(("GET", "/v1/models")) == 2

    def test_delete_needs_a_reason(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned")

        with pytest.raises(services.ServiceError, match="Give a reason"):
            services.model_delete(actor=as_(alice), model_id=ft["id"], reason="  ")

        assert requests(sandbox) == []
        assert entries(kind=Kind.OUTCOME)[0].outcome == Outcome.FAILED

    def test_a_model_already_gone(self, alice, sandbox):
        with pytest.raises(remote.ModelNotFound):
            services.model_delete(actor=as_(alice), model_id="ft:gone:a:b:c", reason="cleanup")

        assert entries(kind=Kind.OUTCOME)[0].outcome == Outcome.FAILED

    def test_without_a_key_the_attempt_is_recorded_as_failed(self, charlie, sandbox):
        with pytest.raises(services.MissingApiKey):
            services.model_archive(actor=as_(charlie), model_id="ft:a:b:c:d")

        attempt, outcome = entries()
        assert (attempt.kind, attempt.credential_id) == (Kind.ATTEMPT, None)
        assert (outcome.outcome, outcome.message) == (
            Outcome.FAILED,
            "Add your Mistral API key first.",
        )
        assert requests(sandbox) == []

    def test_with_an_undecryptable_key_the_attempt_names_it(self, alice, sandbox, settings):
        settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

        with pytest.raises(services.UndecryptableApiKey):
            services.model_delete(actor=as_(alice), model_id="ft:a:b:c:d", reason="cleanup")

        attempt, outcome = entries()
        assert attempt.credential_id == alice.api_credential.pk
        assert attempt.reason == "cleanup"
        assert outcome.outcome == Outcome.FAILED


class TestModelApply:
    @pytest.mark.parametrize(
        ("action", "archived", "method"),
        [
            (Action.MODEL_ARCHIVE, False, "POST"),
            (Action.MODEL_UNARCHIVE, True, "DELETE"),
            (Action.MODEL_DELETE, False, "DELETE"),
        ],
    )
    def test_it_runs_each_bulk_action(self, alice, sandbox, action, archived, method):
        ft = card(sandbox, type="fine-tuned", archived=archived)

        services.model_apply(actor=as_(alice), action=action, model_id=ft["id"], reason="tidy")

        assert len(requests(sandbox, method)) == 1
        attempt, outcome = entries()
        assert (attempt.action, outcome.outcome) == (action, Outcome.SUCCEEDED)

    def test_a_shared_session_reads_each_card_from_its_inventory(self, alice, sandbox):
        picked = [
            c["id"]
            for c in sandbox.state.workspace(ALICE_KEY).models.values()
            if c["type"] == "fine-tuned" and not c["archived"]
        ][:3]
        session = services.upstream_session(alice)
        session.pin_inventory()

        for model_id in picked:
            services.model_apply(
                actor=as_(alice), action=Action.MODEL_ARCHIVE, model_id=model_id, session=session
            )

        assert requests(sandbox, "GET") == [("GET", "/v1/models")]
        assert len(requests(sandbox, "POST")) == 3
        for attempt in entries(kind=Kind.ATTEMPT):
            assert attempt.before["id"] == attempt.target_id
            assert attempt.credential_id == alice.api_credential.pk

    def test_it_refuses_other_actions(self, alice):
        with pytest.raises(ValueError, match="No bulk model action"):
            services.model_apply(actor=as_(alice), action=Action.MODEL_UPDATE, model_id="x")


class TestDenials:
    """What tests/test_roles.py does not cover already: the dispatcher, the check ahead,
    and reads (refused, never recorded)."""

    def test_an_auditors_change_through_the_dispatcher_is_denied(self, carol, sandbox):
        ft = card(sandbox, CAROL_KEY, type="fine-tuned", archived=False)

        with pytest.raises(PermissionDenied):
            services.model_apply(actor=as_(carol), action=Action.MODEL_ARCHIVE, model_id=ft["id"])

        assert [(e.action, e.outcome) for e in entries()] == [
            (Action.MODEL_ARCHIVE, Outcome.DENIED)
        ]

    def test_model_authorize_checks_ahead(self, alice, bob):
        services.model_authorize(actor=as_(alice), action=Action.MODEL_DELETE, target_id="all")
        with pytest.raises(PermissionDenied):
            services.model_authorize(actor=as_(bob), action=Action.MODEL_DELETE, target_id="all")

        assert [(e.actor_username, e.outcome) for e in entries()] == [("bob", Outcome.DENIED)]

    def test_a_refused_read_is_not_recorded(self, bob):
        with pytest.raises(PermissionDenied):
            services.audit_list(actor=as_(bob), filters={})

        assert entries() == []


class TestAuditReads:
    @pytest.mark.parametrize(
        ("service", "kwargs"),
        [
            (services.audit_list, {"filters": {}}),
            (services.audit_detail, {"seq": 1}),
            (services.audit_deleted, {}),
        ],
    )
    def test_they_need_the_view_permission(self, alice, bob, carol, service, kwargs):
        audit.event(actor=as_(alice), action=Action.MEMBER_ROLE, target_id="x")

        for reader in (alice, carol):
            service(actor=as_(reader), **kwargs)
        with pytest.raises(PermissionDenied):
            service(actor=as_(bob), **kwargs)

    def test_the_list_is_filtered_and_paged(self, alice, bob):
        for n in range(3):
            audit.event(actor=as_(alice), action=Action.MEMBER_ROLE, target_id=f"user-{n}")
        audit.denied(actor=as_(bob), action=Action.MODEL_DELETE, target_id="ft:x")

        denied = services.audit_list(actor=as_(alice), filters={"outcome": Outcome.DENIED})
        older = services.audit_list(actor=as_(alice), filters={}, before=3)

        assert [e.seq for e in denied.entries] == [4]
        assert [e.seq for e in older.entries] == [2, 1]

    def test_the_detail_of_an_attempt_brings_its_outcome(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned", archived=False)
        services.model_archive(actor=as_(alice), model_id=ft["id"])
        attempt = entries(kind=Kind.ATTEMPT)[0]

        detail = services.audit_detail(actor=as_(alice), seq=attempt.seq)

        assert detail.entry == attempt
        assert [o.outcome for o in detail.outcomes] == [Outcome.SUCCEEDED]
        assert detail.effective_outcome == Outcome.SUCCEEDED
        assert detail.card["id"] == ft["id"]
        assert detail.changes == {"archived": [False, True]}

    def test_the_detail_of_an_outcome_names_its_attempt(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned", archived=False)
        services.model_archive(actor=as_(alice), model_id=ft["id"])
        attempt, outcome = entries()

        detail = services.audit_detail(actor=as_(alice), seq=outcome.seq)

        assert (detail.attempt, detail.outcomes) == (attempt, [])
        assert detail.effective_outcome == Outcome.SUCCEEDED

    def test_an_unknown_entry(self, alice):
        with pytest.raises(AuditEntry.DoesNotExist):
            services.audit_detail(actor=as_(alice), seq=999)

    def test_deleted_models_come_with_their_last_card(self, alice, sandbox):
        ft = card(sandbox, type="fine-tuned")
        services.model_delete(actor=as_(alice), model_id=ft["id"], reason="superseded")

        deleted = services.audit_deleted(actor=as_(alice))

        ((entry, last_card),) = deleted.rows
        assert entry.target_id == ft["id"] and entry.reason == "superseded"
        assert last_card["job"] == ft["job"]
        assert deleted.page.entries == [entry]

    def test_an_export_is_recorded_and_a_refused_one_too(self, alice, bob):
        lines = list(services.audit_export(actor=as_(alice), filters={}, fmt="ndjson"))
        with pytest.raises(PermissionDenied):
            services.audit_export(actor=as_(bob), filters={}, fmt="csv")

        assert len(lines) == 1  # the export's own entry
        assert [(e.actor_username, e.action, e.outcome) for e in entries()] == [
            ("alice", Action.AUDIT_EXPORT, Outcome.SUCCEEDED),
            ("bob", Action.AUDIT_EXPORT, Outcome.DENIED),
        ]


class TestTeam:
    def test_members_with_roles_and_keys(self, alice, bob, charlie):
        members = services.team_members(actor=as_(alice))

        assert [(m.user.username, m.role) for m in members] == [
            ("alice", roles.Role.TEAM_ADMIN),
            ("bob", roles.Role.MEMBER),
            ("charlie", roles.Role.MEMBER),
        ]
        assert [m.credential is not None for m in members] == [True, True, False]

    def test_only_team_admins_list_the_team(self, bob, carol):
        for reader in (bob, carol):
            with pytest.raises(PermissionDenied):
                services.team_members(actor=as_(reader))

        assert entries() == []

    def test_adding_a_member_without_a_password_then_a_link(self, alice):
        member = services.member_add(
            actor=as_(alice),
            username="erin",
            email="erin@example.com",
            role=roles.Role.AUDITOR,
            password=None,
        )
        link = services.member_password_link(actor=as_(alice), member=member)

        assert not member.has_usable_password()
        assert roles.role_of(member) == roles.Role.AUDITOR
        assert f"/{urlsafe_base64_encode(force_bytes(member.pk))}/" in link
        assert [e.action for e in entries()] == [Action.MEMBER_ADD, Action.MEMBER_PASSWORD_LINK]

    def test_setting_the_same_role_or_state_again_records_nothing(self, alice, bob):
        services.member_set_role(actor=as_(alice), member=bob, role=roles.Role.MEMBER)
        services.member_set_active(actor=as_(alice), member=bob, active=True)

        assert entries() == []

    def test_role_and_state_changes_are_recorded(self, alice, bob):
        services.member_set_role(actor=as_(alice), member=bob, role=roles.Role.AUDITOR)
        services.member_set_active(actor=as_(alice), member=bob, active=False)

        role, deactivated = entries()
        assert role.changes == {"role": ["member", "auditor"]}
        assert deactivated.changes == {"is_active": [True, False]}
        bob.refresh_from_db()
        assert not bob.is_active
