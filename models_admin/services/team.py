"""The team (team admins): who is in it with which role, and changes to its members."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from models_admin import audit, roles
from models_admin.audit import Action, Actor
from models_admin.models import ApiCredential
from models_admin.services.errors import ServiceError, authorize

MANAGE = "models_admin.manage_team"


@dataclass(frozen=True, slots=True)
class TeamMember:
    user: User
    role: roles.Role | None
    credential: ApiCredential | None


def team_members(*, actor: Actor) -> list[TeamMember]:
    """Everyone, by username, with their role and stored key (if any). Raises PermissionDenied."""
    authorize(actor, MANAGE)
    users = User.objects.order_by("username").prefetch_related("groups")
    return [
        TeamMember(user, roles.role_of(user), getattr(user, "api_credential", None))
        for user in users.select_related("api_credential")
    ]


def member_add(
    *, actor: Actor, username: str, email: str, role: roles.Role, password: str | None
) -> User:
    """Create a team member with a role. Without a password the account can't sign in
    until its set-password link (see member_password_link) is used.

    Raises PermissionDenied."""
    authorize(actor, MANAGE, action=Action.MEMBER_ADD, target_id=username)
    with transaction.atomic():
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
    """A one-time set-password path for the member (valid PASSWORD_RESET_TIMEOUT).

    Raises PermissionDenied."""
    authorize(actor, MANAGE, action=Action.MEMBER_PASSWORD_LINK, target_id=member.username)
    uid = urlsafe_base64_encode(force_bytes(member.pk))
    token = default_token_generator.make_token(member)
    audit.event(actor=actor, action=Action.MEMBER_PASSWORD_LINK, target_id=member.username)
    return reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


def member_set_role(*, actor: Actor, member: User, role: roles.Role) -> None:
    """Change a member's role. Team admins can't demote themselves (a team must keep one).

    Raises PermissionDenied or ServiceError."""
    authorize(actor, MANAGE, action=Action.MEMBER_ROLE, target_id=member.username)
    if member.pk == actor.user.pk and role != roles.Role.TEAM_ADMIN:
        raise ServiceError("You can't change your own role; ask another team admin.")
    old = roles.role_of(member)
    if old == role:
        return
    roles.set_role(member, role)
    audit.event(
        actor=actor,
        action=Action.MEMBER_ROLE,
        target_id=member.username,
        changes={"role": [old.value if old else None, role.value]},
    )


def member_set_active(*, actor: Actor, member: User, active: bool) -> None:
    """Deactivate (can't sign in, sessions end) or reactivate a member.

    Raises PermissionDenied or ServiceError."""
    action = Action.MEMBER_REACTIVATE if active else Action.MEMBER_DEACTIVATE
    authorize(actor, MANAGE, action=action, target_id=member.username)
    if member.pk == actor.user.pk:
        raise ServiceError("You can't deactivate yourself.")
    if member.is_active == active:
        return
    member.is_active = active
    member.save(update_fields=["is_active"])
    audit.event(
        actor=actor,
        action=action,
        target_id=member.username,
        changes={"is_active": [not active, active]},
    )
