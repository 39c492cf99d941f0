"""Every change to users, groups and permissions is audited, wherever it happens: the
Django admin (``/admin/auth/user/<id>/change/``), the shell, a management command.

Signals watch the User and Group rows (created, changed, deleted: username, email,
``is_active``, ``is_staff``, ``is_superuser``, and that the password changed, never its
value) and the three many-to-many links (a user's groups, a user's permissions, a
group's permissions), and append one audit entry per change with ``{field: [before,
after]}``. The actor is the signed-in user of the current request (RequestIdMiddleware
sets it for the request's duration), ``anonymous`` for a request without one (a
set-password link), or ``system`` outside any request (management commands, the shell).

Services that write their own, richer entry (the Team page, OpenID Connect sign-in)
make their changes inside ``recorded_by_service()``, so nothing is recorded twice.
``roles.sync_roles`` (after every migrate) runs unrecorded too: it sets the role groups
to the permissions declared in code, and the code's history is the record.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth.models import Group, Permission, User
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.http import HttpRequest

from models_admin import audit
from models_admin.audit import Action

if TYPE_CHECKING:
    from models_admin.http import AuthedRequest

_request_var: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "audited_request", default=None
)
_recorded_var: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "recorded_by_service", default=False
)

USER_FIELDS = ("username", "email", "is_active", "is_staff", "is_superuser", "password")
HIDDEN = "password"  # recorded as changed, never with its value


@contextmanager
def acting_request(request: HttpRequest) -> Iterator[None]:
    """Attribute the changes made while handling ``request`` to its user."""
    token = _request_var.set(request)
    try:
        yield
    finally:
        _request_var.reset(token)


@contextmanager
def recorded_by_service() -> Iterator[None]:
    """The caller records these changes itself: the signals stay quiet."""
    token = _recorded_var.set(True)
    try:
        yield
    finally:
        _recorded_var.reset(token)


def _actor() -> tuple[audit.Actor | None, str]:
    request = _request_var.get()
    if request is None:
        return None, "system"
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None, "anonymous"
    return audit.Actor.from_request(cast("AuthedRequest", request)), ""


def _record(action: str, target_id: str, **fields: Any) -> None:
    actor, system = _actor()
    audit.append(
        kind=audit.Kind.EVENT,
        action=action,
        outcome=audit.Outcome.SUCCEEDED,
        actor=actor,
        system=system,
        target_id=target_id,
        **fields,
    )


def _quiet(raw: bool = False) -> bool:
    return raw or _recorded_var.get()


# --------------------------------------------------------------------------- users


def _on_user_pre_save(sender: type[User], instance: User, raw: bool = False, **kw: Any) -> None:
    update_fields = kw.get("update_fields")
    if _quiet(raw) or instance.pk is None:
        return
    if update_fields is not None and not set(update_fields) & set(USER_FIELDS):
        return  # e.g. last_login at every sign-in
    old = User.objects.filter(pk=instance.pk).values(*USER_FIELDS).first()
    instance._audit_before = old  # type: ignore[attr-defined]


def _on_user_post_save(
    sender: type[User], instance: User, created: bool, raw: bool = False, **kw: Any
) -> None:
    if _quiet(raw):
        return
    after = {f: getattr(instance, f) for f in USER_FIELDS}
    if created:
        after[HIDDEN] = "set" if instance.has_usable_password() else "unusable"
        _record(
            Action.USER_CREATE, instance.username, changes={f: [None, v] for f, v in after.items()}
        )
        return
    before = instance.__dict__.pop("_audit_before", None)
    if before is None:
        return
    changes = {f: [before[f], after[f]] for f in USER_FIELDS if before[f] != after[f]}
    if HIDDEN in changes:
        changes[HIDDEN] = ["(old)", "changed"]
    if changes:
        _record(Action.USER_CHANGE, instance.username, changes=changes)


def _on_user_pre_delete(sender: type[User], instance: User, **kw: Any) -> None:
    if _quiet():
        return
    state = {f: getattr(instance, f) for f in USER_FIELDS if f != HIDDEN}
    state["groups"] = _labels(instance, "groups")
    state["user_permissions"] = _labels(instance, "user_permissions")
    instance._audit_before = state  # type: ignore[attr-defined]


def _on_user_post_delete(sender: type[User], instance: User, **kw: Any) -> None:
    before = instance.__dict__.pop("_audit_before", None)
    if _quiet() or before is None:
        return
    _record(Action.USER_DELETE, instance.username, before=before)


# --------------------------------------------------------------------------- groups


def _on_group_pre_save(sender: type[Group], instance: Group, raw: bool = False, **kw: Any) -> None:
    if not _quiet(raw) and instance.pk is not None:
        old = Group.objects.filter(pk=instance.pk).values_list("name", flat=True).first()
        instance._audit_before = old  # type: ignore[attr-defined]


def _on_group_post_save(
    sender: type[Group], instance: Group, created: bool, raw: bool = False, **kw: Any
) -> None:
    before = instance.__dict__.pop("_audit_before", None)
    if _quiet(raw):
        return
    if created:
        _record(Action.GROUP_CREATE, instance.name, changes={"name": [None, instance.name]})
    elif before is not None and before != instance.name:
        _record(Action.GROUP_CHANGE, instance.name, changes={"name": [before, instance.name]})


def _on_group_pre_delete(sender: type[Group], instance: Group, **kw: Any) -> None:
    if not _quiet():
        members = list(instance.user_set.order_by("username").values_list("username", flat=True))
        state = {"permissions": _labels(instance, "permissions"), "members": members}
        instance._audit_before = state  # type: ignore[attr-defined]


def _on_group_post_delete(sender: type[Group], instance: Group, **kw: Any) -> None:
    before = instance.__dict__.pop("_audit_before", None)
    if not _quiet() and before is not None:
        _record(Action.GROUP_DELETE, instance.name, before=before)


# --------------------------------------------------------------------------- links

# through model -> (the model that owns the field, the field)
_LINKS: dict[type[models.Model], tuple[type[models.Model], str]] = {
    User.groups.through: (User, "groups"),
    User.user_permissions.through: (User, "user_permissions"),
    Group.permissions.through: (Group, "permissions"),
}


def _labels(owner: models.Model, field: str) -> list[str]:
    related = getattr(owner, field).all()
    if related.model is Permission:
        rows = related.values_list("content_type__app_label", "codename")
        return sorted(f"{app}.{codename}" for app, codename in rows)
    return sorted(related.values_list("name", flat=True))


def _on_m2m_changed(
    sender: type[models.Model],
    instance: models.Model,
    action: str,
    reverse: bool,
    model: type[models.Model],
    pk_set: set[Any] | None,
    **kw: Any,
) -> None:
    if _quiet() or sender not in _LINKS:
        return
    owner_model, field = _LINKS[sender]
    if action.startswith("pre_"):
        if not reverse:
            owners: list[models.Model] = [instance]
        elif pk_set is None:  # clear() from the other side
            owners = list(owner_model._default_manager.filter(**{field: instance}))
        else:
            owners = list(owner_model._default_manager.filter(pk__in=pk_set))
        pending = {o.pk: (o, _labels(o, field)) for o in owners}
        instance.__dict__.setdefault("_audit_m2m", {})[sender] = pending
        return
    for owner, before in instance.__dict__.get("_audit_m2m", {}).pop(sender, {}).values():
        after = _labels(owner, field)
        if after != before:
            is_user = isinstance(owner, User)
            target = owner.get_username() if is_user else str(owner)
            _record(
                Action.USER_CHANGE if is_user else Action.GROUP_CHANGE,
                target,
                changes={field: [before, after]},
            )


def connect() -> None:
    """Connect the handlers (AppConfig.ready)."""
    uid = "models_admin.signals."
    pre_save.connect(_on_user_pre_save, sender=User, dispatch_uid=uid + "user_pre_save")
    post_save.connect(_on_user_post_save, sender=User, dispatch_uid=uid + "user_post_save")
    pre_delete.connect(_on_user_pre_delete, sender=User, dispatch_uid=uid + "user_pre_delete")
    post_delete.connect(_on_user_post_delete, sender=User, dispatch_uid=uid + "user_post_delete")
    pre_save.connect(_on_group_pre_save, sender=Group, dispatch_uid=uid + "group_pre_save")
    post_save.connect(_on_group_post_save, sender=Group, dispatch_uid=uid + "group_post_save")
    pre_delete.connect(_on_group_pre_delete, sender=Group, dispatch_uid=uid + "group_pre_delete")
    post_delete.connect(_on_group_post_delete, sender=Group, dispatch_uid=uid + "group_post_delete")
    for through in _LINKS:
        m2m_changed.connect(_on_m2m_changed, sender=through, dispatch_uid=uid + through.__name__)
