"""The team (team admins): who is in it with which role, and changes to its members.

Nobody acts on an account with more privilege than their own. The rule between team
admins: a team admin manages members, auditors and users without a role; only a
superuser manages team admins and superusers (issues their set-password links,
deactivates, reactivates or changes their role). A team admin may still give the team
admin role to a member: that grants no more than the team admin holds. Refusals are
recorded as denied.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Permission, User
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from models_admin import audit, roles, signals
from models_admin.audit import Action, Actor
from models_admin.models import ApiCredential
from models_admin.services.errors import ServiceError, authorize

MANAGE = "models_admin.manage_team"


@dataclass(frozen=True, slots=True)
class TeamMember:
    user: User
    role: roles.Role | None
    credential: ApiCredential | None
    manageable: bool  # the actor may change this account (see may_manage)


OUTRANKED = "Only a superuser can change a team admin's or a superuser's account."


def may_manage(actor: User, member: User) -> bool:
    """Whether ``actor`` may act on ``member``'s account: superusers on anyone; others
    only on accounts that are neither superusers nor staff, hold no permission the
    actor lacks, and are not team admins, unless the team admin account was never used
    (no usable password, never signed in: one just added, waiting for its link)."""
    if actor.is_superuser:
        return True
    if member.is_superuser or member.is_staff:
        return False
    held = _permissions(member)
    if not held <= actor.get_all_permissions():
        return False
    unused = member.last_login is None and not member.has_usable_password()
    return unused or MANAGE not in held


def _permissions(user: User) -> set[str]:
    """The user's permissions, whether or not the account is active (has_perm() says
    no to every permission of a deactivated account, which must not make it look
    harmless: it can be reactivated)."""
    rows = Permission.objects.filter(Q(user=user) | Q(group__user=user))
    return {f"{a}.{c}" for a, c in rows.values_list("content_type__app_label", "codename")}


def _authorize_over(actor: Actor, member: User, action: str) -> None:
    """authorize(), then refuse (and record) acting on a more privileged account."""
    authorize(actor, MANAGE, action=action, target_id=member.username)
    if not may_manage(actor.user, member):
        audit.denied(actor=actor, action=action, target_id=member.username, message=OUTRANKED)
        raise PermissionDenied(OUTRANKED)


def team_members(*, actor: Actor) -> list[TeamMember]:
    """Everyone, by username, with their role, stored key (if any) and whether the actor
    may change them. Raises PermissionDenied."""
    authorize(actor, MANAGE)
    users = User.objects.order_by("username").prefetch_related("groups")
    return [
        TeamMember(
            user,
            roles.role_of(user),
            getattr(user, "api_credential", None),
            may_manage(actor.user, user),
        )
        for user in users.select_related("api_credential")
    ]


def member_add(
    *, actor: Actor, username: str, email: str, role: roles.Role, password: str | None
) -> User:
    """Create a team member with a role. Without a password the account can't sign in
    until its set-password link (see member_password_link) is used.

    Raises PermissionDenied."""
    authorize(actor, MANAGE, action=Action.MEMBER_ADD, target_id=username)
    with transaction.atomic(), signals.recorded_by_service():
        user = User(username=username, email=email)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        roles.set_role(user, role)
    audit.event(
        actor=actor,
        action=Action.MEMBER_ADD,
        target_id=username,
        target_name=email,
        changes={"role": [None, role.value]},
        details={"initial_password": bool(password)},
    )
    return user


def member_password_link(*, actor: Actor, member: User) -> str:
    """A one-time set-password path for the member (valid PASSWORD_LINK_HOURS).

    Raises PermissionDenied (also for a more privileged member, see may_manage)."""
    _authorize_over(actor, member, Action.MEMBER_PASSWORD_LINK)
    uid = urlsafe_base64_encode(force_bytes(member.pk))
    token = default_token_generator.make_token(member)
    audit.event(actor=actor, action=Action.MEMBER_PASSWORD_LINK, target_id=member.username)
    return reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


def member_set_role(*, actor: Actor, member: User, role: roles.Role) -> None:
    """Change a member's role. Team admins can't demote themselves (a team must keep one).

    Raises PermissionDenied (also for a more privileged member) or ServiceError."""
    authorize(actor, MANAGE, action=Action.MEMBER_ROLE, target_id=member.username)
    if member.pk == actor.user.pk and role != roles.Role.TEAM_ADMIN:
        raise ServiceError("You can't change your own role; ask another team admin.")
    old = roles.role_of(member)
    if old == role:
        return
    _authorize_over(actor, member, Action.MEMBER_ROLE)
    with signals.recorded_by_service():
        roles.set_role(member, role)
    audit.event(
        actor=actor,
        action=Action.MEMBER_ROLE,
        target_id=member.username,
        changes={"role": [old.value if old else None, role.value]},
    )


def member_set_active(*, actor: Actor, member: User, active: bool) -> None:
    """Deactivate (can't sign in, sessions end) or reactivate a member.

    Raises PermissionDenied (also for a more privileged member) or ServiceError."""
    action = Action.MEMBER_REACTIVATE if active else Action.MEMBER_DEACTIVATE
    authorize(actor, MANAGE, action=action, target_id=member.username)
    if member.pk == actor.user.pk:
        raise ServiceError("You can't deactivate yourself.")
    if member.is_active == active:
        return
    _authorize_over(actor, member, action)
    member.is_active = active
    with signals.recorded_by_service():
        member.save(update_fields=["is_active"])
    audit.event(
        actor=actor,
        action=action,
        target_id=member.username,
        changes={"is_active": [not active, active]},
    )
