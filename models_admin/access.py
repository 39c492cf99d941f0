"""What a warm page needs to know about its user, without a query: their permissions
and which cached inventory their stored key reads.

Both are kept in the cache, one entry per user, stamped with the *access generation*:
a number in the database (models.AccessGeneration, one row) that every change to
users, groups, permissions, their links or a stored API key bumps, in the change's own
transaction (the signals below). The number is read with the user on every request
(the authentication backends' ``get_user`` annotates it: no query of its own), and an
entry stamped with another number is ignored. So a role change, a removed or replaced
key takes effect on the next request, in every worker, whether or not the cache could
be reached when it happened; and a per-process cache (no Redis) is as safe as a shared
one. The cache stays an accelerator (inventory.safe_cache): a miss asks the database.

What bumps it: saving or deleting a User (but not a sign-in's ``last_login``), a Group,
a Permission or an ApiCredential; changing a user's groups or permissions, or a group's
permissions. ``QuerySet.update()`` sends no signal: code that changes those rows in
bulk calls ``bump()`` itself.
"""

from __future__ import annotations

import time
from typing import Any, Final

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.db.models import F, Model, QuerySet, Subquery
from django.db.models.signals import m2m_changed, post_delete, post_save

from models_admin.compiled import CompiledLookup
from models_admin.inventory import safe_cache
from models_admin.models import AccessGeneration, ApiCredential

GENERATION: Final = "access_generation"  # the annotation on the request's user
PREFIX: Final = "access:v1:"
_MEMO: Final = "_access_entry"


def users() -> QuerySet[User]:
    """Users, each with the access generation read in the same query."""
    current = AccessGeneration.objects.filter(pk=1).values("value")[:1]
    return User._default_manager.annotate(**{GENERATION: Subquery(current)})


# The request's user by id, with the generation: every request's one query.
_user_by_id: CompiledLookup[User] = CompiledLookup(User, lambda pk: users().filter(pk=pk))


def current() -> int | None:
    """The access generation now (None when its row is missing: nothing is cached)."""
    value: int | None = (
        AccessGeneration.objects.filter(pk=1).values_list("value", flat=True).first()
    )
    return value


def bump() -> None:
    """Every cached entry is out of date from now on (once the transaction commits)."""
    if not AccessGeneration.objects.filter(pk=1).update(value=F("value") + 1):
        # The row was removed: start again above any number an old entry could carry.
        AccessGeneration.objects.get_or_create(pk=1, defaults={"value": time.time_ns()})


def _entry(user: Any) -> dict[str, Any]:
    """The user's cached entry if it has the generation read with them (read once per
    request: kept on the user object), else an empty one."""
    memo: dict[str, Any] | None = getattr(user, _MEMO, None)
    if memo is None:
        memo = {}
        generation = getattr(user, GENERATION, None)
        if generation is not None and settings.ACCESS_CACHE_SECONDS > 0:
            found = safe_cache.get(f"{PREFIX}{user.pk}")
            if isinstance(found, dict) and found.get("generation") == generation:
                memo = found
        setattr(user, _MEMO, memo)
    return memo


def recall(user: Any, name: str) -> Any:
    """What was remembered under ``name`` for the user at this generation, or None."""
    return _entry(user).get(name)


def remember(user: Any, name: str, value: object) -> None:
    """Keep ``value`` for the user until the next change of access (or the timeout)."""
    generation = getattr(user, GENERATION, None)
    entry = _entry(user)
    if generation is None or settings.ACCESS_CACHE_SECONDS <= 0 or entry.get(name) == value:
        return
    entry = {**entry, "generation": generation, name: value}
    setattr(user, _MEMO, entry)
    safe_cache.set(f"{PREFIX}{user.pk}", entry, settings.ACCESS_CACHE_SECONDS)


class CachedAccess(ModelBackend):
    """A ModelBackend whose users carry the access generation and whose permissions are
    kept in the cache (what ``user.has_perm`` reads: two queries per request otherwise)."""

    def get_user(self, user_id: Any) -> User | None:
        try:
            pk = int(user_id)
        except (TypeError, ValueError):
            return None
        user = _user_by_id.first(pk)
        return user if user is not None and self.user_can_authenticate(user) else None

    def get_all_permissions(
        self, user_obj: User | AnonymousUser, obj: Model | None = None
    ) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        user: Any = user_obj
        if not hasattr(user, "_perm_cache"):
            cached = recall(user, "permissions")
            if not isinstance(cached, frozenset):
                cached = frozenset(super().get_all_permissions(user_obj))
                remember(user, "permissions", cached)
            user._perm_cache = set(cached)
        return user._perm_cache  # type: ignore[no-any-return]


class Backend(CachedAccess):
    """Django's password sign-in (settings.AUTHENTICATION_BACKENDS)."""


# --------------------------------------------------------------------------- signals


def _saved(sender: type[Model], instance: Model, **kw: Any) -> None:
    update_fields = kw.get("update_fields")
    if sender is User and update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a sign-in
    bump()


def _deleted(sender: type[Model], instance: Model, **kw: Any) -> None:
    bump()


def _linked(sender: type[Model], action: str, **kw: Any) -> None:
    if action.startswith("post_"):
        bump()


def connect() -> None:
    """Connect the handlers (AppConfig.ready)."""
    uid = "models_admin.access."
    for model in (User, Group, Permission, ApiCredential):
        name = model.__name__
        post_save.connect(_saved, sender=model, dispatch_uid=f"{uid}saved.{name}")
        post_delete.connect(_deleted, sender=model, dispatch_uid=f"{uid}deleted.{name}")
    for through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(_linked, sender=through, dispatch_uid=f"{uid}linked.{through.__name__}")
