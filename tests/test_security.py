"""The findings of the security probe (issue 13), each as the attack that worked."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from models_admin import roles, services, signals
from models_admin.audit import Action, Actor
from models_admin.logging import JsonFormatter, RequestIdFilter, TextFormatter
from models_admin.models import AuditEntry
from tests.conftest import make_user
from tests.helpers import url


@pytest.fixture
def root(db) -> User:
    with signals.recorded_by_service():
        return User.objects.create_superuser("root", "root@example.com", "root-password")


@pytest.fixture
def erin(db) -> User:
    """A second team admin."""
    return make_user("erin", roles.Role.TEAM_ADMIN)


def fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)


def last_entry() -> AuditEntry:
    return AuditEntry.objects.order_by("-seq").first()


class TestNoTakeoverOfMorePrivilegedAccounts:
    """High 1: a team admin could issue a set-password link for a superuser, sign in as
    them and own /admin/."""

    def test_a_team_admin_cannot_get_a_superusers_password_link(self, as_alice, root):
        response = as_alice.post(url("team_password_link", root.pk))

        assert response.status_code == 403
        assertNotContains(response, "set-password", status_code=403)
        entry = last_entry()
        assert (entry.action, entry.outcome, entry.target_id) == (
            Action.MEMBER_PASSWORD_LINK,
            "denied",
            "root",
        )

    @pytest.mark.parametrize(
        ("name", "data"),
        [("team_active", {"active": "0"}), ("team_role", {"role": "member"})],
    )
    def test_a_team_admin_cannot_deactivate_or_demote_a_superuser(self, as_alice, root, name, data):
        response = as_alice.post(url(name, root.pk), data)

        assert response.status_code == 403
        root = fresh(root)
        assert root.is_active and root.is_superuser
        assert last_entry().outcome == "denied"

    def test_a_team_admin_cannot_reactivate_a_deactivated_superuser(self, alice, root):
        with signals.recorded_by_service():
            User.objects.filter(pk=root.pk).update(is_active=False)

        with pytest.raises(PermissionDenied):
            services.member_set_active(actor=Actor(alice), member=fresh(root), active=True)

        assert not fresh(root).is_active

    @pytest.mark.parametrize(
        ("service", "kwargs"),
        [
            (services.member_password_link, {}),
            (services.member_set_active, {"active": False}),
            (services.member_set_role, {"role": roles.Role.MEMBER}),
        ],
    )
    def test_only_a_superuser_manages_team_admins(self, alice, erin, root, service, kwargs):
        with signals.recorded_by_service():
            erin.set_password("erin-password")
            erin.save()
        with pytest.raises(PermissionDenied):
            service(actor=Actor(alice), member=erin, **kwargs)

        service(actor=Actor(root), member=fresh(erin), **kwargs)

        outcomes = list(AuditEntry.objects.order_by("seq").values_list("actor_username", "outcome"))
        assert outcomes == [("alice", "denied"), ("root", "succeeded")]

    def test_a_team_admin_still_manages_members(self, alice, bob):
        services.member_set_active(actor=Actor(alice), member=bob, active=False)

        assert not fresh(bob).is_active

    def test_a_new_team_admin_gets_its_first_link(self, as_alice):
        response = as_alice.post(url("team_add"), {"username": "dave", "role": "team_admin"})

        assertContains(response, 'id="set-password-link"')

    def test_the_page_offers_nothing_it_would_refuse(self, as_alice, root, bob):
        response = as_alice.get(url("team"))

        assertNotContains(response, url("team_password_link", root.pk))
        assertNotContains(response, url("team_active", root.pk))
        assertNotContains(response, url("team_role", root.pk))
        assertContains(response, url("team_password_link", bob.pk))
        assertContains(response, "Only a superuser can change this account.")


class TestPrivilegeChangesAreAuditedEverywhere:
    """High 2: changes in Django admin wrote no audit entry."""

    @pytest.fixture
    def as_root(self, client, root):
        client.force_login(root)
        return client

    def _admin_change(self, client, user: User, **overrides):
        user = fresh(user)
        data = {
            "username": user.username,
            "email": user.email,
            "first_name": "",
            "last_name": "",
            "is_active": "on" if user.is_active else "",
            "is_staff": "on" if user.is_staff else "",
            "is_superuser": "on" if user.is_superuser else "",
            "groups": [g.pk for g in user.groups.all()],
            "user_permissions": [p.pk for p in user.user_permissions.all()],
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "_save": "Save",
        }
        data.update(overrides)
        data = {k: v for k, v in data.items() if v != ""}
        return client.post(f"/admin/auth/user/{user.pk}/change/", data)

    def test_superuser_staff_and_groups_changed_in_admin(self, as_root, bob):
        admins = Group.objects.get(name=roles.GROUP_NAMES[roles.Role.TEAM_ADMIN])

        response = self._admin_change(
            as_root, bob, is_superuser="on", is_staff="on", groups=[admins.pk]
        )

        assert response.status_code == 302
        entries = AuditEntry.objects.filter(target_id="bob").order_by("seq")
        assert {e.actor_username for e in entries} == {"root"}
        assert all(e.action == Action.USER_CHANGE for e in entries)
        changes: dict = {}
        for e in entries:
            changes.update(e.changes)
        assert changes["is_superuser"] == [False, True]
        assert changes["is_staff"] == [False, True]
        assert changes["groups"][-1] == ["Team admins"]
        assert entries.first().request_id  # tied to the request that did it

    def test_user_permissions_and_deactivation_in_admin(self, as_root, bob):
        delete = Permission.objects.get(codename="delete_models")

        self._admin_change(as_root, bob, is_active="", user_permissions=[delete.pk])

        changes: dict = {}
        for e in AuditEntry.objects.filter(target_id="bob"):
            changes.update(e.changes)
        assert changes["is_active"] == [True, False]
        assert changes["user_permissions"] == [[], ["models_admin.delete_models"]]

    def test_group_permissions_creation_and_deletion(self, root):
        group = Group.objects.create(name="Ops")
        group.permissions.add(Permission.objects.get(codename="delete_models"))
        group.delete()

        rows = list(
            AuditEntry.objects.order_by("seq").values_list("action", "target_id", "actor_username")
        )
        assert rows == [
            (Action.GROUP_CREATE, "Ops", "system"),
            (Action.GROUP_CHANGE, "Ops", "system"),
            (Action.GROUP_DELETE, "Ops", "system"),
        ]
        assert AuditEntry.objects.get(action=Action.GROUP_CHANGE).changes == {
            "permissions": [[], ["models_admin.delete_models"]]
        }

    def test_user_creation_and_deletion(self, db):
        user = User.objects.create_user("mallory", "m@example.com", "pw-123456789")
        user.groups.add(Group.objects.get(name="Team admins"))
        user.delete()

        created, grouped, deleted = AuditEntry.objects.order_by("seq")
        assert created.changes["is_superuser"] == [None, False]
        assert created.changes["password"] == [None, "set"]
        assert grouped.changes == {"groups": [[], ["Team admins"]]}
        assert deleted.before["groups"] == ["Team admins"]

    def test_a_group_membership_changed_from_the_group_side(self, bob):
        auditors = Group.objects.get(name="Auditors")

        auditors.user_set.add(bob)

        (entry,) = AuditEntry.objects.all()
        assert (entry.target_id, entry.changes) == (
            "bob",
            {"groups": [["Members"], ["Auditors", "Members"]]},
        )

    def test_a_password_change_is_recorded_without_the_password(self, bob):
        bob.set_password("new-password-42")
        bob.save()

        (entry,) = AuditEntry.objects.all()
        assert entry.changes == {"password": ["(old)", "changed"]}
        assert "new-password" not in json.dumps(entry.changes)

    def test_a_sign_in_records_nothing(self, client, bob):
        response = client.post(reverse("login"), {"username": "bob", "password": "bob-password"})

        assert response.status_code == 302

        assert not AuditEntry.objects.exists()

    def test_the_team_page_is_not_recorded_twice(self, as_alice, bob):
        as_alice.post(url("team_role", bob.pk), {"role": "auditor"})
        as_alice.post(url("team_active", bob.pk), {"active": "0"})
        as_alice.post(url("team_add"), {"username": "dave", "role": "member"})

        actions = list(AuditEntry.objects.order_by("seq").values_list("action", flat=True))
        assert actions == [
            Action.MEMBER_ROLE,
            Action.MEMBER_DEACTIVATE,
            Action.MEMBER_ADD,
            Action.MEMBER_PASSWORD_LINK,
        ]


class TestSetPasswordTokens:
    """Medium 4: the request log showed the set-password token."""

    def test_the_token_never_reaches_a_log_line(self, as_alice, bob, caplog):
        caplog.set_level(logging.INFO, logger="models_admin.requests")
        response = as_alice.post(url("team_password_link", bob.pk))
        link = urlsplit(response.context["new_link"][1]).path
        token = link.rstrip("/").rsplit("/", 1)[1]

        Client().get(link)

        (record,) = [r for r in caplog.records if r.getMessage().startswith("GET /accounts/")]
        RequestIdFilter().filter(record)
        text = TextFormatter("%(message)s").format(record)
        line = JsonFormatter().format(record)
        assert token not in text and token not in line
        assert "/accounts/set-password/" in text and "[redacted]" in json.loads(line)["path"]

    def test_links_expire_after_a_day_by_default(self, settings):
        assert settings.PASSWORD_LINK_HOURS == 24
        assert settings.PASSWORD_RESET_TIMEOUT == 24 * 3600
