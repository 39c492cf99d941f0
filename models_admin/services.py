"""Use cases: what views, admin actions and management commands call.

Each service takes keyword-only arguments, checks the actor's permission itself
(templates only hide what a service would refuse anyway), calls Mistral through
remote.ModelsApi with the actor's own key, writes the audit log, and says in its
docstring what it raises:

    ServiceError            .message is safe to show to users
    ├── MissingApiKey       the user has not saved a key yet
    ├── UndecryptableApiKey the stored key can no longer be decrypted (its encryption key was removed)
    ├── NotFineTuned        the action only applies to fine-tuned models
    └── EditConflict        the model changed upstream since the edit form was opened
    django PermissionDenied the actor's role does not allow the action (recorded as denied)
    remote.ModelsApiError   Mistral failed or refused

Every change is written ahead to the audit log (audit.attempt) before it goes
upstream, and its outcome appended after, whatever happens.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.debug import sensitive_variables

from models_admin import audit, audit_reports, crypto, remote, roles
from models_admin.audit import Action, Actor, Outcome
from models_admin.inventory import Inventory
from models_admin.inventory import shared as inventories
from models_admin.logging import register_secret
from models_admin.models import ApiCredential

# last_used_at is bumped at most this often, so browsing costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ServiceError(Exception):
    message = "The action could not be completed."

    def __init__(self, message: str | None = None) -> None:
        if message:
            self.message = message
        super().__init__(self.message)


class MissingApiKey(ServiceError):
    message = "Add your Mistral API key first."


class UndecryptableApiKey(ServiceError):
    message = (
        "Your stored API key can't be decrypted any more (its encryption key was retired). "
        "Enter your key again."
    )


class NotFineTuned(ServiceError):
    message = "Only fine-tuned models can be changed; base models belong to Mistral."


class EditConflict(ServiceError):
    """The model's name or description changed upstream after the form was opened."""

    def __init__(self, current: remote.ModelCard) -> None:
        self.current = current
        super().__init__(
            "Someone changed this model since you opened the form. "
            "The form now shows the current values; review them and save again."
        )


def authorize(actor: Actor, permission: str, *, action: str = "", target_id: str = "") -> None:
    """Raise PermissionDenied unless the actor's role grants the permission. A refused
    change (``action`` given) is recorded in the audit log as denied."""
    if actor.user.has_perm(permission):
        return
    if action:
        audit.denied(actor=actor, action=action, target_id=target_id)
    raise PermissionDenied("Your role does not allow this.")


# --------------------------------------------------------------------------- API keys


def credential_get(*, user: User) -> ApiCredential | None:
    return ApiCredential.objects.filter(user=user).first()


@sensitive_variables("api_key", "old_key")
def credential_save(*, actor: Actor, api_key: str, verify: bool = True) -> ApiCredential:
    """Store the actor's key, encrypted, replacing any earlier one.

    With ``verify`` the key is checked first with a list call (whose result primes the
    model cache): raises remote.ApiAuthFailed if Mistral rejects it (nothing is stored)
    or another remote.ModelsApiError if Mistral can't be asked."""
    register_secret(api_key)
    existing = credential_get(user=actor.user)
    action = Action.API_KEY_REPLACE if existing else Action.API_KEY_ADD
    verified_at = None
    if verify:
        try:
            _fetch_inventory(remote.ModelsApi(api_key=api_key), _inventory_cache_key(api_key))
        except remote.ModelsApiError as exc:
            audit.event(
                actor=actor,
                action=action,
                outcome=Outcome.FAILED,
                upstream_status=exc.status,
                message=f"The key was not saved: {exc.message}",
            )
            raise
        verified_at = timezone.now()
    with transaction.atomic():
        credential = ApiCredential.objects.select_for_update().filter(user=actor.user).first()
        old_key = _decrypt_or_none(credential) if credential else None
        old_masked = credential.key_masked if credential else ""
        if credential is None:
            credential = ApiCredential(user=actor.user)
        credential.set_key(api_key)
        credential.updated_at = timezone.now()
        credential.verified_at = verified_at
        credential.save()
    if old_key and old_key != api_key:
        inventories.forget(_inventory_cache_key(old_key))
    audit.event(
        actor=actor,
        action=action,
        credential=credential,
        changes={"key": [old_masked or None, credential.key_masked]},
        message="Checked with Mistral." if verify else "Saved without checking it with Mistral.",
    )
    return credential


def credential_remove(*, actor: Actor) -> bool:
    """Delete the actor's stored key. Returns whether there was one."""
    credential = credential_get(user=actor.user)
    if credential is None:
        return False
    old_key = _decrypt_or_none(credential)
    audit.event(
        actor=actor,
        action=Action.API_KEY_REMOVE,
        credential=credential,
        changes={"key": [credential.key_masked, None]},
    )
    credential.delete()
    if old_key:
        inventories.forget(_inventory_cache_key(old_key))
    return True


def _decrypt_or_none(credential: ApiCredential) -> str | None:
    try:
        return credential.get_key()
    except crypto.UndecryptableError:
        return None


@dataclass(frozen=True, slots=True)
class Upstream:
    """The actor's way to Mistral: a client with their key, and where its cache lives."""

    api: remote.ModelsApi
    credential: ApiCredential
    cache_key: str

    def cached_inventory(self) -> Inventory | None:
        return inventories.get(self.cache_key)

    def forget_inventory(self) -> None:
        inventories.forget(self.cache_key)


@sensitive_variables("api_key")
def upstream_for(
    user: User, credential: ApiCredential | None = None, *, gate: remote.RateGate | None = None
) -> Upstream:
    """Mistral, as the user (their own stored key); ``gate`` is shared by a bulk job's calls.

    Raises MissingApiKey or UndecryptableApiKey."""
    credential = credential or credential_get(user=user)
    if credential is None:
        raise MissingApiKey()
    try:
        api_key = credential.get_key()
    except crypto.UndecryptableError:
        raise UndecryptableApiKey() from None
    register_secret(api_key)
    now = timezone.now()
    if credential.last_used_at is None or now - credential.last_used_at > LAST_USED_RESOLUTION:
        ApiCredential.objects.filter(pk=credential.pk).update(last_used_at=now)
    return Upstream(
        remote.ModelsApi(api_key=api_key, gate=gate), credential, _inventory_cache_key(api_key)
    )


# --------------------------------------------------------------------------- browsing


def _inventory_cache_key(api_key: str) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), api_key.encode(), hashlib.sha256).hexdigest()
    return f"inventory:v2:{digest[:40]}"


def _fetch_inventory(api: remote.ModelsApi, cache_key: str) -> Inventory:
    inventory = Inventory.build(api.list_models())
    inventories.set(cache_key, inventory)
    return inventory


def models_inventory(*, actor: Actor, refresh: bool = False) -> Inventory:
    """Every model the actor's key can see, from the cache or one list call.

    Raises MissingApiKey, UndecryptableApiKey, PermissionDenied or remote.ModelsApiError."""
    authorize(actor, "models_admin.browse_models")
    upstream = upstream_for(actor.user)
    if not refresh and (cached := upstream.cached_inventory()) is not None:
        return cached
    return _fetch_inventory(upstream.api, upstream.cache_key)


def model_get(*, actor: Actor, model_id: str) -> remote.ModelCard:
    """One model, fresh from Mistral. Raises like models_inventory, or remote.ModelNotFound."""
    authorize(actor, "models_admin.browse_models")
    return upstream_for(actor.user).api.retrieve_model(model_id)


# --------------------------------------------------------------------------- changes


@dataclass(slots=True)
class _Change:
    upstream: Upstream
    attempt: audit.Attempt

    def fine_tuned(
        self, model_id: str, known: remote.ModelCard | None = None
    ) -> remote.FineTunedModelCard:
        """The current card (fetched, unless the caller just read it: ``known``), kept as
        the attempt's before-snapshot. Raises NotFineTuned."""
        card = known if known is not None else self.upstream.api.retrieve_model(model_id)
        self.attempt.before = audit.card_snapshot(card)
        if not isinstance(card, remote.FineTunedModelCard):
            raise NotFineTuned()
        return card


@contextmanager
def _change(
    actor: Actor,
    permission: str,
    *,
    action: str,
    model_id: str,
    reason: str = "",
    changes: dict[str, list[str | None]] | None = None,
    upstream: Upstream | None = None,
    known: remote.ModelCard | None = None,
) -> Iterator[_Change]:
    """Authorise, write the attempt ahead, then run the change; the outcome is
    recorded whatever happens (see audit.attempt). The attempt carries the card from
    the actor's cached inventory when there is one, so even a process that dies
    mid-delete leaves a record of what the model was."""
    authorize(actor, permission, action=action, target_id=model_id)
    problem: ServiceError | None = None
    if upstream is not None:
        credential: ApiCredential | None = upstream.credential
    else:
        credential = credential_get(user=actor.user)
        try:
            upstream = upstream_for(actor.user, credential)
        except ServiceError as exc:
            problem = exc
    if known is None and upstream is not None:
        inventory = upstream.cached_inventory()
        row = inventory.find(model_id) if inventory else None
        known = row.card if row else None
    with audit.attempt(
        actor=actor,
        action=action,
        target_id=model_id,
        target_name=known.display_name if known else "",
        before=audit.card_snapshot(known) if known else None,
        changes=changes,
        reason=reason,
        credential=credential,
    ) as attempt:
        if upstream is None:
            raise problem or MissingApiKey()
        try:
            yield _Change(upstream, attempt)
        finally:
            if attempt.sent:
                upstream.forget_inventory()


def model_update(
    *,
    actor: Actor,
    model_id: str,
    name: str | None,
    description: str | None,
    expected_name: str | None,
    expected_description: str | None,
) -> remote.FineTunedModelCard:
    """Rename and/or re-describe a fine-tuned model (``None`` clears a field).

    ``expected_*`` are the values the user saw when the form opened: if the model has
    changed since, nothing is sent and EditConflict carries the current card.
    Raises PermissionDenied, MissingApiKey, UndecryptableApiKey, NotFineTuned,
    EditConflict or remote.ModelsApiError (ApiRejected with field errors on a 422)."""
    requested = {
        field: [old, new]
        for field, old, new in (
            ("name", expected_name, name),
            ("description", expected_description, description),
        )
        if old != new
    }
    with _change(
        actor,
        "models_admin.change_models",
        action=Action.MODEL_UPDATE,
        model_id=model_id,
        changes=requested,
    ) as change:
        before = change.fine_tuned(model_id)
        if (before.name, before.description) != (expected_name, expected_description):
            raise EditConflict(before)
        payload = {field: new for field, (_, new) in requested.items()}
        if not payload:
            change.attempt.succeeded(message="Nothing to change.", target_name=before.display_name)
            return before
        change.attempt.mark_sent()
        updated = change.upstream.api.update_model(model_id, **payload)
        after = dataclasses.replace(
            before, name=updated.name, description=updated.description, archived=updated.archived
        )
        change.attempt.succeeded(
            changes={field: [getattr(before, field), getattr(after, field)] for field in payload},
            target_name=after.display_name,
        )
    return after


def _set_archived(
    actor: Actor,
    model_id: str,
    archived: bool,
    known: remote.ModelCard | None,
    upstream: Upstream | None,
) -> remote.FineTunedModelCard:
    action = Action.MODEL_ARCHIVE if archived else Action.MODEL_UNARCHIVE
    with _change(
        actor,
        "models_admin.change_models",
        action=action,
        model_id=model_id,
        upstream=upstream,
        known=known,
    ) as change:
        before = change.fine_tuned(model_id, known)
        if before.archived == archived:
            change.attempt.succeeded(message="It already was.", target_name=before.display_name)
            return before
        change.attempt.mark_sent()
        api = change.upstream.api
        result = api.archive_model(model_id) if archived else api.unarchive_model(model_id)
        change.attempt.succeeded(
            changes={"archived": [before.archived, result.archived]},
            target_name=before.display_name,
        )
    return dataclasses.replace(before, archived=result.archived)


def model_archive(
    *,
    actor: Actor,
    model_id: str,
    known: remote.ModelCard | None = None,
    upstream: Upstream | None = None,
) -> remote.FineTunedModelCard:
    """Archive a fine-tuned model (reversible). A bulk job passes the card it ``known``s
    (saving a retrieve per model) and the ``upstream`` its calls share (one stored key,
    read and decrypted once per job, and one RateGate).

    Raises PermissionDenied, MissingApiKey, UndecryptableApiKey, NotFineTuned or
    remote.ModelsApiError."""
    return _set_archived(actor, model_id, True, known, upstream)


def model_unarchive(
    *,
    actor: Actor,
    model_id: str,
    known: remote.ModelCard | None = None,
    upstream: Upstream | None = None,
) -> remote.FineTunedModelCard:
    """Unarchive a fine-tuned model. Raises like model_archive."""
    return _set_archived(actor, model_id, False, known, upstream)


def model_delete(
    *,
    actor: Actor,
    model_id: str,
    reason: str,
    known: remote.ModelCard | None = None,
    upstream: Upstream | None = None,
) -> remote.DeleteResult:
    """Delete a fine-tuned model for good (team admins only); ``reason`` is required.
    ``known`` and ``upstream`` as for model_archive.

    Raises PermissionDenied, MissingApiKey, UndecryptableApiKey, NotFineTuned or
    remote.ModelsApiError (ModelNotFound when it was already gone)."""
    with _change(
        actor,
        "models_admin.delete_models",
        action=Action.MODEL_DELETE,
        model_id=model_id,
        reason=reason,
        upstream=upstream,
        known=known,
    ) as change:
        if not reason.strip():
            raise ServiceError("Give a reason for deleting the model.")
        before = change.fine_tuned(model_id, known)
        change.attempt.mark_sent()
        result = change.upstream.api.delete_model(model_id)
        change.attempt.succeeded(
            target_name=before.display_name,
            message="Confirmed by a retry that found it gone." if result.confirmed_by_retry else "",
        )
    return result


# --------------------------------------------------------------------------- team


def _role_label(role: roles.Role | None) -> str | None:
    return role.value if role else None


def member_add(
    *, actor: Actor, username: str, email: str, role: roles.Role, password: str | None
) -> User:
    """Create a team member with a role. Without a password the account can't sign in
    until its set-password link (see member_password_link) is used.

    Raises PermissionDenied."""
    authorize(actor, "models_admin.manage_team", action=Action.MEMBER_ADD, target_id=username)
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
    authorize(
        actor,
        "models_admin.manage_team",
        action=Action.MEMBER_PASSWORD_LINK,
        target_id=member.username,
    )
    uid = urlsafe_base64_encode(force_bytes(member.pk))
    token = default_token_generator.make_token(member)
    audit.event(actor=actor, action=Action.MEMBER_PASSWORD_LINK, target_id=member.username)
    return reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


def member_set_role(*, actor: Actor, member: User, role: roles.Role) -> None:
    """Change a member's role. Team admins can't demote themselves (a team must keep one).

    Raises PermissionDenied or ServiceError."""
    authorize(
        actor, "models_admin.manage_team", action=Action.MEMBER_ROLE, target_id=member.username
    )
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
        changes={"role": [_role_label(old), role.value]},
    )


def member_set_active(*, actor: Actor, member: User, active: bool) -> None:
    """Deactivate (can't sign in, sessions end) or reactivate a member.

    Raises PermissionDenied or ServiceError."""
    action = Action.MEMBER_REACTIVATE if active else Action.MEMBER_DEACTIVATE
    authorize(actor, "models_admin.manage_team", action=action, target_id=member.username)
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


# --------------------------------------------------------------------------- audit log


def audit_export(*, actor: Actor, filters: dict[str, Any], fmt: str) -> Iterable[str]:
    """The filtered audit log as CSV or NDJSON lines, streamed. The export is recorded
    (with its filters) before the first line goes out.

    Raises PermissionDenied."""
    authorize(actor, "models_admin.export_auditentry", action=Action.AUDIT_EXPORT)
    audit.event(
        actor=actor,
        action=Action.AUDIT_EXPORT,
        details={"format": fmt, "filters": {k: str(v) for k, v in filters.items()}},
    )
    entries = audit_reports.search(filters)
    return audit_reports.csv_lines(entries) if fmt == "csv" else audit_reports.ndjson_lines(entries)
