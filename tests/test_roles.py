"""Roles (member, team admin, auditor), checked in the views and again in the services,
and the team page where team admins manage members."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains, assertTemplateUsed

from models_admin import roles, services
from models_admin.audit import Actor
from models_admin.models import ApiCredential, AuditEntry
from tests.conftest import ALICE_KEY, BOB_KEY, CAROL_KEY, make_user
from tests.helpers import fine_tuned, url

NEW_PASSWORD = "correct-horse-battery-42"

# What each role may do, as permission codenames.
ALLOWED = {
    roles.Role.MEMBER: {"browse_models", "change_models"},
    roles.Role.TEAM_ADMIN: {"browse_models", "change_models", "delete_models", "manage_team"},
    roles.Role.AUDITOR: {"browse_models"},
}
MODEL_PERMISSIONS = ("browse_models", "change_models", "delete_models", "manage_team")


def changing_calls(sandbox) -> list:
    return [r for r in sandbox.state.requests if r.method != "GET"]


def fresh(user: User) -> User:
    """The user as the database has it now (no cached permissions)."""
    return User.objects.get(pk=user.pk)


def denials(username: str) -> int:
    return AuditEntry.objects.filter(actor_username=username, outcome="denied").count()


def signs_in(username: str, password: str) -> bool:
    """Whether the login form accepts these credentials (as a browser would use it)."""
    response = Client().post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302


def new_member_link(client: Client, username: str) -> str:
    """Add a member without a password; the path of the set-password link shown."""
    response = client.post(url("team_add"), {"username": username, "role": "member"})
    return urlsplit(response.context["new_link"][1]).path


def set_password(path: str, password: str):
    """Follow a set-password link in a fresh browser and submit the form."""
    browser = Client()
    form_page = browser.get(path, follow=True)
    target = form_page.redirect_chain[-1][0] if form_page.redirect_chain else path
    return browser.post(target, {"new_password1": password, "new_password2": password})


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def nobody(db) -> User:
    """Signed up, but in no role group."""
    return make_user("nobody", None)


class TestRoleGroups:
    @pytest.mark.parametrize("role", list(roles.Role))
    def test_each_role_is_a_group_with_exactly_its_permissions(self, db, role):
        group = Group.objects.get(name=roles.GROUP_NAMES[role])

        granted = {p.codename for p in group.permissions.all()}

        assert granted & set(MODEL_PERMISSIONS) == ALLOWED[role]

    @pytest.mark.parametrize("role", list(roles.Role))
    def test_has_perm_follows_the_role(self, db, role):
        user = fresh(make_user("someone", role))

        allowed = {c for c in MODEL_PERMISSIONS if user.has_perm(f"models_admin.{c}")}

        assert allowed == ALLOWED[role]

    def test_syncing_again_changes_nothing(self, db):
        before = {g.name: {p.pk for p in g.permissions.all()} for g in Group.objects.all()}

        roles.sync_roles()

        after = {g.name: {p.pk for p in g.permissions.all()} for g in Group.objects.all()}
        assert after == before

    def test_a_user_has_one_role_at_a_time(self, db):
        user = make_user("someone", roles.Role.TEAM_ADMIN)

        roles.set_role(user, roles.Role.AUDITOR)

        assert roles.role_of(fresh(user)) == roles.Role.AUDITOR
        assert [g.name for g in fresh(user).groups.all()] == ["Auditors"]
        assert not fresh(user).has_perm("models_admin.delete_models")

    def test_superusers_count_as_team_admins(self, db):
        user = User.objects.create_superuser("root", "root@example.com", "root-password")

        assert roles.role_of(user) == roles.Role.TEAM_ADMIN

    def test_no_group_is_no_role(self, nobody):
        assert roles.role_of(nobody) is None
        assert not nobody.has_perm("models_admin.browse_models")


class TestMemberInViews:
    def test_it_browses(self, as_bob, sandbox):
        ft = fine_tuned(sandbox, BOB_KEY)

        assert as_bob.get(url("model_list")).status_code == 200
        assert as_bob.get(url("model_detail", ft["id"])).status_code == 200

    def test_it_renames(self, as_bob, sandbox):
        ft = fine_tuned(sandbox, BOB_KEY)
        expected = {"name": ft["name"], "description": ft["description"]}

        response = as_bob.post(
            url("model_edit", ft["id"]),
            {"name": "bobs-name", "description": "", "expected": json.dumps(expected)},
        )

        assert response.status_code == 302
        assert sandbox.state.workspace(BOB_KEY).get(ft["id"])["name"] == "bobs-name"

    def test_it_archives_and_unarchives(self, as_bob, sandbox):
        ft = fine_tuned(sandbox, BOB_KEY)

        as_bob.post(url("model_archive", ft["id"]))
        archived = sandbox.state.workspace(BOB_KEY).get(ft["id"])["archived"]
        as_bob.post(url("model_unarchive", ft["id"]))

        assert archived is True
        assert sandbox.state.workspace(BOB_KEY).get(ft["id"])["archived"] is False

    @pytest.mark.parametrize("method", ["get", "post"])
    def test_it_cannot_delete(self, as_bob, bob, sandbox, method):
        ft = fine_tuned(sandbox, BOB_KEY)

        response = getattr(as_bob, method)(
            url("model_delete", ft["id"]), {"confirm_id": ft["id"], "reason": "cleanup"}
        )

        assert response.status_code == 403
        assert sandbox.state.workspace(BOB_KEY).get(ft["id"]) is not None
        assert changing_calls(sandbox) == []
        assert denials("bob") == (1 if method == "post" else 0)

    def test_it_is_not_offered_delete(self, as_bob, sandbox):
        response = as_bob.get(url("model_detail", fine_tuned(sandbox, BOB_KEY)["id"]))

        assertNotContains(response, "/delete/")

    def test_it_cannot_open_the_team_page(self, as_bob):
        response = as_bob.get(url("team"))

        assert response.status_code == 403
        assertNotContains(response, "Add a member", status_code=403)


class TestAuditorInViews:
    def test_it_browses(self, as_carol, sandbox):
        ft = fine_tuned(sandbox, CAROL_KEY)

        list_page = as_carol.get(url("model_list"))
        detail_page = as_carol.get(url("model_detail", ft["id"]))

        assertContains(list_page, ft["id"])
        assertContains(detail_page, ft["id"])
        assertNotContains(list_page, ">Archive</button>")
        assertNotContains(detail_page, "/edit/")

    @pytest.mark.parametrize(
        ("method", "name", "data"),
        [
            ("get", "model_edit", {}),
            ("post", "model_edit", {"name": "x", "description": "", "expected": "{}"}),
            ("post", "model_archive", {}),
            ("post", "model_row_archive", {}),
            ("get", "model_delete", {}),
            ("post", "model_delete", {"reason": "cleanup"}),
            ("get", "model_row_delete", {}),
            ("post", "model_row_delete", {"reason": "cleanup"}),
        ],
    )
    def test_it_cannot_change_anything(self, as_carol, sandbox, method, name, data):
        ft = fine_tuned(sandbox, CAROL_KEY)
        before = dict(sandbox.state.workspace(CAROL_KEY).get(ft["id"]))

        response = getattr(as_carol, method)(url(name, ft["id"]), data)

        assert response.status_code == 403
        assert sandbox.state.workspace(CAROL_KEY).get(ft["id"]) == before
        assert changing_calls(sandbox) == []

    def test_it_cannot_unarchive(self, as_carol, sandbox):
        ft = fine_tuned(sandbox, CAROL_KEY, archived=True)

        response = as_carol.post(url("model_unarchive", ft["id"]), headers={"HX-Request": "true"})

        assert response.status_code == 403
        assert sandbox.state.workspace(CAROL_KEY).get(ft["id"])["archived"] is True

    def test_it_cannot_open_the_team_page(self, as_carol):
        assert as_carol.get(url("team")).status_code == 403

    def test_it_manages_its_own_key(self, as_carol, carol, sandbox):
        response = as_carol.post(url("api_key"), {"api_key": "sandbox-carol-second-key-77aa"})

        assert response.status_code == 302
        assert ApiCredential.objects.get(user=carol).get_key() == "sandbox-carol-second-key-77aa"


class TestNoRoleInViews:
    def test_it_cannot_browse(self, client, nobody, sandbox):
        client.force_login(nobody)

        response = client.get(url("model_list"))

        assert response.status_code == 403
        assert sandbox.state.requests == []


class TestTeamAdminInViews:
    def test_it_deletes(self, as_alice, sandbox):
        ft = fine_tuned(sandbox, ALICE_KEY)

        response = as_alice.post(
            url("model_delete", ft["id"]), {"confirm_id": ft["id"], "reason": "superseded"}
        )

        assert response.status_code == 302
        assert sandbox.state.workspace(ALICE_KEY).get(ft["id"]) is None

    def test_it_sees_the_team_link(self, as_alice):
        assertContains(as_alice.get(url("api_key")), f'href="{url("team")}"')


class TestServicesCheckPermissionsThemselves:
    """Called directly, as a management command or admin action would: the service
    refuses on its own, records the denial, and never goes upstream."""

    @pytest.mark.parametrize(
        ("service", "kwargs"),
        [
            (services.model_archive, {}),
            (
                services.model_update,
                {
                    "name": "x",
                    "description": None,
                    "expected_name": None,
                    "expected_description": None,
                },
            ),
            (services.model_delete, {"reason": "cleanup"}),
        ],
        ids=["archive", "update", "delete"],
    )
    def test_an_auditor_cannot_change_models(self, carol, sandbox, service, kwargs):
        ft = fine_tuned(sandbox, CAROL_KEY)

        with pytest.raises(PermissionDenied):
            service(actor=Actor(user=carol), model_id=ft["id"], **kwargs)

        assert sandbox.state.requests == []
        assert denials("carol") == 1

    def test_an_auditor_cannot_unarchive(self, carol, sandbox):
        ft = fine_tuned(sandbox, CAROL_KEY, archived=True)

        with pytest.raises(PermissionDenied):
            services.model_unarchive(actor=Actor(user=carol), model_id=ft["id"])

        assert sandbox.state.workspace(CAROL_KEY).get(ft["id"])["archived"] is True

    def test_an_auditor_can_browse(self, carol, sandbox):
        inventory = services.models_inventory(actor=Actor(user=carol))

        assert inventory.rows

    def test_a_member_cannot_delete(self, bob, sandbox):
        ft = fine_tuned(sandbox, BOB_KEY)

        with pytest.raises(PermissionDenied):
            services.model_delete(actor=Actor(user=bob), model_id=ft["id"], reason="cleanup")

        assert sandbox.state.workspace(BOB_KEY).get(ft["id"]) is not None
        assert sandbox.state.requests == []
        (denied,) = AuditEntry.objects.all()
        assert (denied.action, denied.outcome, denied.target_id) == (
            AuditEntry.Action.MODEL_DELETE,
            AuditEntry.Outcome.DENIED,
            ft["id"],
        )

    def test_a_member_can_archive(self, bob, sandbox):
        ft = fine_tuned(sandbox, BOB_KEY)

        card = services.model_archive(actor=Actor(user=bob), model_id=ft["id"])

        assert card.archived is True

    def test_a_team_admin_can_delete(self, alice, sandbox):
        ft = fine_tuned(sandbox, ALICE_KEY)

        services.model_delete(actor=Actor(user=alice), model_id=ft["id"], reason="superseded")

        assert sandbox.state.workspace(ALICE_KEY).get(ft["id"]) is None

    @pytest.mark.parametrize("service", [services.models_inventory, services.model_get])
    def test_no_role_cannot_browse(self, nobody, sandbox, service):
        kwargs = {"model_id": "mistral-small-latest"} if service is services.model_get else {}

        with pytest.raises(PermissionDenied):
            service(actor=Actor(user=nobody), **kwargs)

        assert sandbox.state.requests == []

    @pytest.mark.parametrize("who", ["bob", "carol"])
    def test_only_team_admins_manage_the_team(self, request, who, charlie):
        actor = Actor(user=request.getfixturevalue(who))

        with pytest.raises(PermissionDenied):
            services.member_add(
                actor=actor, username="mallory", email="", role=roles.Role.TEAM_ADMIN, password=None
            )
        with pytest.raises(PermissionDenied):
            services.member_set_role(actor=actor, member=charlie, role=roles.Role.TEAM_ADMIN)
        with pytest.raises(PermissionDenied):
            services.member_set_active(actor=actor, member=charlie, active=False)
        with pytest.raises(PermissionDenied):
            services.member_password_link(actor=actor, member=charlie)

        assert not User.objects.filter(username="mallory").exists()
        assert roles.role_of(fresh(charlie)) == roles.Role.MEMBER
        assert fresh(charlie).is_active
        assert denials(who) == 4

    def test_a_member_cannot_promote_itself(self, bob):
        with pytest.raises(PermissionDenied):
            services.member_set_role(actor=Actor(user=bob), member=bob, role=roles.Role.TEAM_ADMIN)

        assert roles.role_of(fresh(bob)) == roles.Role.MEMBER

    def test_a_team_admin_cannot_demote_itself(self, alice):
        with pytest.raises(services.ServiceError, match="own role"):
            services.member_set_role(actor=Actor(user=alice), member=alice, role=roles.Role.MEMBER)

        assert roles.role_of(fresh(alice)) == roles.Role.TEAM_ADMIN

    def test_a_team_admin_cannot_deactivate_itself(self, alice):
        with pytest.raises(services.ServiceError, match="deactivate yourself"):
            services.member_set_active(actor=Actor(user=alice), member=alice, active=False)

        assert fresh(alice).is_active


class TestTeamPage:
    def test_it_lists_every_member_with_role_and_masked_key(self, as_alice, bob, carol, charlie):
        response = as_alice.get(url("team"))

        assertTemplateUsed(response, "models_admin/team.html")
        for user in ("alice", "bob", "carol", "charlie"):
            assertContains(response, f"<strong>{user}</strong>")
        assertContains(response, bob.api_credential.key_masked)
        for key in (ALICE_KEY, BOB_KEY, CAROL_KEY):
            assertNotContains(response, key)
        roles_shown = {row.user.username: row.role for row in response.context["rows"]}
        assert roles_shown == {
            "alice": roles.Role.TEAM_ADMIN,
            "bob": roles.Role.MEMBER,
            "carol": roles.Role.AUDITOR,
            "charlie": roles.Role.MEMBER,
        }

    def test_it_requires_login(self, client, db):
        response = client.get(url("team"))

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))

    @pytest.mark.parametrize(
        ("name", "args"),
        [
            ("team_add", ()),
            ("team_role", (1,)),
            ("team_active", (1,)),
            ("team_password_link", (1,)),
        ],
    )
    def test_its_actions_reject_get(self, as_alice, name, args):
        assert as_alice.get(url(name, *args)).status_code == 405

    def test_it_rejects_post(self, as_alice):
        assert as_alice.post(url("team")).status_code == 405

    @pytest.mark.parametrize("who", ["bob", "carol"])
    def test_its_actions_are_refused_to_others(self, request, who, charlie):
        client = logged_in(request.getfixturevalue(who))

        responses = [
            client.post(url("team_add"), {"username": "mallory", "role": "team_admin"}),
            client.post(url("team_role", charlie.pk), {"role": "team_admin"}),
            client.post(url("team_active", charlie.pk), {"active": "0"}),
            client.post(url("team_password_link", charlie.pk)),
        ]

        assert [r.status_code for r in responses] == [403, 403, 403, 403]
        assert not User.objects.filter(username="mallory").exists()
        assert roles.role_of(fresh(charlie)) == roles.Role.MEMBER
        assert fresh(charlie).is_active

    def test_an_unknown_member_is_404(self, as_alice):
        assert as_alice.post(url("team_role", 999_999), {"role": "member"}).status_code == 404
        assert as_alice.post(url("team_active", 999_999), {"active": "0"}).status_code == 404


class TestAddMember:
    def test_it_adds_a_member_with_a_password(self, as_alice):
        response = as_alice.post(
            url("team_add"),
            {
                "username": "dave",
                "email": "dave@example.com",
                "role": "auditor",
                "password": NEW_PASSWORD,
            },
        )

        assert response.status_code == 302
        assert response["Location"] == url("team")
        dave = User.objects.get(username="dave")
        assert dave.email == "dave@example.com"
        assert roles.role_of(dave) == roles.Role.AUDITOR
        assert signs_in("dave", NEW_PASSWORD)

    def test_the_password_never_comes_back(self, as_alice):
        response = as_alice.post(
            url("team_add"),
            {"username": "dave", "role": "member", "password": NEW_PASSWORD},
            follow=True,
        )

        assertContains(response, "Added dave.")
        assertNotContains(response, NEW_PASSWORD)

    def test_without_a_password_it_shows_a_one_time_link(self, as_alice):
        response = as_alice.post(url("team_add"), {"username": "dave", "role": "member"})

        assert response.status_code == 200
        member, link = response.context["new_link"]
        assert member.username == "dave"
        assert not member.has_usable_password()
        assert link.startswith("http://testserver/accounts/set-password/")
        assertContains(response, f'<code id="set-password-link">{link}</code>')
        assertContains(response, "It works once, and expires in 24 hours.")

    def test_the_link_opens_a_set_password_form(self, as_alice):
        path = new_member_link(as_alice, "dave")

        response = Client().get(path, follow=True)

        assertTemplateUsed(response, "registration/password_reset_confirm.html")
        assertContains(response, "Set your password")
        assertContains(response, 'name="new_password1"')

    def test_the_link_lets_the_member_set_a_password_and_sign_in(self, as_alice):
        path = new_member_link(as_alice, "dave")

        done = set_password(path, NEW_PASSWORD)

        assert done.status_code == 302
        assert done["Location"] == reverse("login")
        assert signs_in("dave", NEW_PASSWORD)

    def test_the_link_works_once(self, as_alice):
        path = new_member_link(as_alice, "dave")
        set_password(path, NEW_PASSWORD)

        again = Client().get(path, follow=True)

        assertContains(again, "This link has been used or has expired.")
        assertNotContains(again, 'name="new_password1"')
        assert set_password(path, "another-password-77").status_code == 200
        assert signs_in("dave", NEW_PASSWORD)

    def test_a_new_link_for_an_existing_member(self, as_alice, charlie):
        response = as_alice.post(url("team_password_link", charlie.pk))

        member, link = response.context["new_link"]
        assert member == charlie
        assertContains(response, link)

    @pytest.mark.parametrize(
        ("data", "field", "says"),
        [
            ({"username": "BOB", "role": "member"}, "username", "That username is taken."),
            ({"username": "bad name!", "role": "member"}, "username", "Letters, digits"),
            ({"username": "", "role": "member"}, "username", "This field is required."),
            ({"username": "dave", "role": "root"}, "role", "Select a valid choice."),
            ({"username": "dave", "role": "member", "email": "nope"}, "email", "valid email"),
            (
                {"username": "dave", "role": "member", "password": "password"},
                "password",
                "too common",
            ),
            ({"username": "dave", "role": "member", "password": "dave"}, "password", "too short"),
        ],
        ids=["taken", "bad-username", "no-username", "bad-role", "bad-email", "common", "short"],
    )
    def test_bad_input_is_a_form_error(self, as_alice, bob, data, field, says):
        users_before = User.objects.count()

        response = as_alice.post(url("team_add"), data)

        assert response.status_code == 200
        assertContains(response, says)
        assert response.context["form"].errors[field]
        assert User.objects.count() == users_before


class TestChangeRole:
    def test_it_changes_a_role(self, as_alice, bob):
        response = as_alice.post(url("team_role", bob.pk), {"role": "auditor"}, follow=True)

        assertContains(response, "bob is now an auditor.")
        assert roles.role_of(fresh(bob)) == roles.Role.AUDITOR
        assert not fresh(bob).has_perm("models_admin.change_models")

    def test_the_new_role_applies_to_an_open_session(self, as_alice, bob, sandbox):
        bobs_session = logged_in(bob)
        ft = fine_tuned(sandbox, BOB_KEY)

        as_alice.post(url("team_role", bob.pk), {"role": "auditor"})

        assert bobs_session.post(url("model_archive", ft["id"])).status_code == 403

    def test_a_promotion_grants_delete(self, as_alice, bob):
        as_alice.post(url("team_role", bob.pk), {"role": "team_admin"})

        assert fresh(bob).has_perm("models_admin.delete_models")
        assert logged_in(bob).get(url("team")).status_code == 200

    def test_an_unknown_role_changes_nothing(self, as_alice, bob):
        response = as_alice.post(url("team_role", bob.pk), {"role": "root"}, follow=True)

        assertContains(response, "Pick one of the roles.")
        assert roles.role_of(fresh(bob)) == roles.Role.MEMBER

    @pytest.mark.parametrize("role", ["member", "auditor"])
    def test_a_team_admin_cannot_demote_itself(self, as_alice, alice, role):
        response = as_alice.post(url("team_role", alice.pk), {"role": role}, follow=True)

        assertContains(response, "You can&#x27;t change your own role")
        assert roles.role_of(fresh(alice)) == roles.Role.TEAM_ADMIN
        assert as_alice.get(url("team")).status_code == 200


class TestDeactivate:
    def test_a_deactivated_member_cannot_sign_in(self, as_alice, bob):
        response = as_alice.post(url("team_active", bob.pk), {"active": "0"}, follow=True)

        assertContains(response, "bob is deactivated.")
        assertContains(response, "Deactivated")
        assert not fresh(bob).is_active
        assert not signs_in("bob", "bob-password")

    def test_an_open_session_stops_working(self, as_alice, bob):
        bobs_session = logged_in(bob)
        assert bobs_session.get(url("api_key")).status_code == 200

        as_alice.post(url("team_active", bob.pk), {"active": "0"})

        response = bobs_session.get(url("api_key"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))

    def test_the_login_form_refuses_a_deactivated_member(self, as_alice, bob):
        as_alice.post(url("team_active", bob.pk), {"active": "0"})

        response = Client().post(reverse("login"), {"username": "bob", "password": "bob-password"})

        assert response.status_code == 200
        assertContains(response, "Please enter a correct username and password")

    def test_a_reactivated_member_signs_in_again(self, as_alice, bob):
        as_alice.post(url("team_active", bob.pk), {"active": "0"})

        response = as_alice.post(url("team_active", bob.pk), {"active": "1"}, follow=True)

        assertContains(response, "bob can sign in again.")
        assert fresh(bob).is_active
        assert signs_in("bob", "bob-password")

    def test_a_team_admin_cannot_deactivate_itself(self, as_alice, alice):
        response = as_alice.post(url("team_active", alice.pk), {"active": "0"}, follow=True)

        assertContains(response, "You can&#x27;t deactivate yourself.")
        assert fresh(alice).is_active
        assert as_alice.get(url("team")).status_code == 200
