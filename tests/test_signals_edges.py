"""The audit signals on users and groups (``signals.py``) at their edges: a save that
changes nothing, a renamed group, a group emptied from its side."""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from models_admin.audit import Action
from models_admin.models import AuditEntry


def entries() -> list[tuple[str, str, dict]]:
    rows = AuditEntry.objects.order_by("seq").values_list("action", "target_id", "changes")
    return [(action, target, changes) for action, target, changes in rows]


class TestUsers:
    def test_saving_a_user_unchanged_records_nothing(self, bob):
        before = AuditEntry.objects.count()
        user = User.objects.get(username="bob")

        user.save()

        assert AuditEntry.objects.count() == before

    def test_emptying_a_group_from_its_side_records_each_member_losing_it(self, alice, bob):
        ops = Group.objects.create(name="Ops")
        ops.user_set.add(alice, bob)
        before = AuditEntry.objects.count()

        ops.user_set.clear()

        assert entries()[before:] == [
            (Action.USER_CHANGE, "alice", {"groups": [["Ops", "Team admins"], ["Team admins"]]}),
            (Action.USER_CHANGE, "bob", {"groups": [["Members", "Ops"], ["Members"]]}),
        ]


class TestGroups:
    def test_renaming_a_group_records_old_and_new_name(self, db):
        group = Group.objects.create(name="Ops")
        group.name = "Operations"

        group.save()

        assert entries()[-1] == (
            Action.GROUP_CHANGE,
            "Operations",
            {"name": ["Ops", "Operations"]},
        )

    def test_saving_a_group_unchanged_records_nothing(self, db):
        group = Group.objects.create(name="Ops")
        before = AuditEntry.objects.count()

        group.save()

        assert AuditEntry.objects.count() == before
