"""The three roles, kept as Django groups of permissions (synced after every migrate).

member      browse, rename/describe, archive/unarchive
team admin  + delete, review and export the audit log, manage members
auditor     read-only: browse and the audit log
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission, User
from django.db import models, transaction


class Role(models.TextChoices):
    MEMBER = "member", "Member"
    TEAM_ADMIN = "team_admin", "Team admin"
    AUDITOR = "auditor", "Auditor"


GROUP_NAMES: dict[Role, str] = {
    Role.MEMBER: "Members",
    Role.TEAM_ADMIN: "Team admins",
    Role.AUDITOR: "Auditors",
}

# app_label.codename for each role.
PERMISSIONS: dict[Role, tuple[str, ...]] = {
    Role.MEMBER: ("models_admin.browse_models", "models_admin.change_models"),
    Role.TEAM_ADMIN: (
        "models_admin.browse_models",
        "models_admin.change_models",
        "models_admin.delete_models",
        "models_admin.manage_team",
        "models_admin.view_auditentry",
        "models_admin.export_auditentry",
    ),
    # Auditors may export too: taking evidence away is what an audit is for.
    Role.AUDITOR: (
        "models_admin.browse_models",
        "models_admin.view_auditentry",
        "models_admin.export_auditentry",
    ),
}


def sync_roles(**kwargs: Any) -> None:
    """Create the groups and give them exactly their permissions (idempotent)."""
    # Our permissions may not exist yet when this runs in post_migrate: make them first.
    create_permissions(apps.get_app_config("models_admin"), verbosity=0)
    with transaction.atomic():
        for role, perms in PERMISSIONS.items():
            group, _ = Group.objects.get_or_create(name=GROUP_NAMES[role])
            wanted: list[Permission] = []
            for perm in perms:
                app_label, codename = perm.split(".")
                wanted.extend(
                    Permission.objects.filter(content_type__app_label=app_label, codename=codename)
                )
            group.permissions.set(wanted)


def role_of(user: User) -> Role | None:
    """The user's role: superusers count as team admins; otherwise their group."""
    if user.is_superuser:
        return Role.TEAM_ADMIN
    by_name = {name: role for role, name in GROUP_NAMES.items()}
    # .all() so a prefetch_related("groups") is used (the team page lists everyone).
    for group in user.groups.all():
        if group.name in by_name:
            return by_name[group.name]
    return None


def set_role(user: User, role: Role) -> None:
    """Put the user in exactly one role group."""
    role_groups = Group.objects.filter(name__in=GROUP_NAMES.values())
    with transaction.atomic():
        user.groups.remove(*role_groups)
        user.groups.add(Group.objects.get(name=GROUP_NAMES[role]))
    # has_perm() caches permissions on the instance; drop the cache.
    for attr in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(attr, None)
