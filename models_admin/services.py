"""Use cases: what views, admin actions and management commands call.

Each service takes keyword-only arguments, checks the actor's permission itself
(templates only hide what a service would refuse anyway), calls Mistral through
remote.ModelsApi with the actor's own key, and says in its docstring what it raises:

    ServiceError            .message is safe to show to users
    ├── MissingApiKey       the user has not saved a key yet
    ├── UndecryptableApiKey the stored key can no longer be decrypted (its encryption key was removed)
    ├── NotFineTuned        the action only applies to fine-tuned models
    └── EditConflict        the model changed upstream since the edit form was opened
    django PermissionDenied the actor's role does not allow the action
    remote.ModelsApiError   Mistral failed or refused
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.debug import sensitive_variables

from models_admin import crypto, remote, roles
from models_admin.audit import Actor
from models_admin.inventory import Inventory
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


def authorize(actor: Actor, permission: str) -> None:
    """Raise PermissionDenied unless the actor's role grants the permission."""
    if not actor.user.has_perm(permission):
        raise PermissionDenied("Your role does not allow this.")


# --------------------------------------------------------------------------- API keys


def credential_get(*, user: User) -> ApiCredential | None:
    return ApiCredential.objects.filter(user=user).first()


@sensitive_variables("api_key")
def credential_save(*, actor: Actor, api_key: str, verify: bool = True) -> ApiCredential:
    """Store the actor's key, encrypted, replacing any earlier one.

    With ``verify`` the key is checked first with a list call (whose result primes the
    model cache): raises remote.ApiAuthFailed if Mistral rejects it (nothing is stored)
    or another remote.ModelsApiError if Mistral can't be asked."""
    register_secret(api_key)
    verified_at = None
    if verify:
        _fetch_inventory(remote.ModelsApi(api_key=api_key), api_key)
        verified_at = timezone.now()
    with transaction.atomic():
        credential = ApiCredential.objects.select_for_update().filter(user=actor.user).first()
        old_key = _decrypt_or_none(credential) if credential else None
        if credential is None:
            credential = ApiCredential(user=actor.user)
        credential.set_key(api_key)
        credential.updated_at = timezone.now()
        credential.verified_at = verified_at
        credential.save()
    if old_key and old_key != api_key:
        cache.delete(_inventory_cache_key(old_key))
    return credential


def credential_remove(*, actor: Actor) -> bool:
    """Delete the actor's stored key. Returns whether there was one."""
    credential = credential_get(user=actor.user)
    if credential is None:
        return False
    old_key = _decrypt_or_none(credential)
    credential.delete()
    if old_key:
        cache.delete(_inventory_cache_key(old_key))
    return True


def _decrypt_or_none(credential: ApiCredential) -> str | None:
    try:
        return credential.get_key()
    except crypto.UndecryptableError:
        return None


def api_for(user: User) -> tuple[remote.ModelsApi, str]:
    """A client that acts with the user's own key, and that key.

    Raises MissingApiKey or UndecryptableApiKey."""
    credential = credential_get(user=user)
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
    return remote.ModelsApi(api_key=api_key), api_key


# --------------------------------------------------------------------------- browsing


def _inventory_cache_key(api_key: str) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), api_key.encode(), hashlib.sha256).hexdigest()
    return f"inventory:v1:{digest[:40]}"


def _fetch_inventory(api: remote.ModelsApi, api_key: str) -> Inventory:
    inventory = Inventory.build(api.list_models())
    cache.set(_inventory_cache_key(api_key), inventory, settings.MODEL_LIST_CACHE_SECONDS)
    return inventory


def models_inventory(*, actor: Actor, refresh: bool = False) -> Inventory:
    """Every model the actor's key can see, from the cache or one list call.

    Raises MissingApiKey, UndecryptableApiKey, PermissionDenied or remote.ModelsApiError."""
    authorize(actor, "models_admin.browse_models")
    api, api_key = api_for(actor.user)
    if not refresh:
        cached = cache.get(_inventory_cache_key(api_key))
        if isinstance(cached, Inventory):
            return cached
    return _fetch_inventory(api, api_key)


def model_get(*, actor: Actor, model_id: str) -> remote.ModelCard:
    """One model, fresh from Mistral. Raises like models_inventory, or remote.ModelNotFound."""
    authorize(actor, "models_admin.browse_models")
    api, _ = api_for(actor.user)
    return api.retrieve_model(model_id)


# --------------------------------------------------------------------------- changes


def _fine_tuned(api: remote.ModelsApi, model_id: str) -> remote.FineTunedModelCard:
    card = api.retrieve_model(model_id)
    if not isinstance(card, remote.FineTunedModelCard):
        raise NotFineTuned()
    return card


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
    authorize(actor, "models_admin.change_models")
    api, api_key = api_for(actor.user)
    before = _fine_tuned(api, model_id)
    if (before.name, before.description) != (expected_name, expected_description):
        raise EditConflict(before)
    changes = {
        field: value
        for field, value in (("name", name), ("description", description))
        if getattr(before, field) != value
    }
    if not changes:
        return before
    updated = api.update_model(model_id, **changes)
    cache.delete(_inventory_cache_key(api_key))
    return dataclasses.replace(
        before, name=updated.name, description=updated.description, archived=updated.archived
    )


def _set_archived(actor: Actor, model_id: str, archived: bool) -> remote.FineTunedModelCard:
    authorize(actor, "models_admin.change_models")
    api, api_key = api_for(actor.user)
    before = _fine_tuned(api, model_id)
    if before.archived == archived:
        return before
    result = api.archive_model(model_id) if archived else api.unarchive_model(model_id)
    cache.delete(_inventory_cache_key(api_key))
    return dataclasses.replace(before, archived=result.archived)


def model_archive(*, actor: Actor, model_id: str) -> remote.FineTunedModelCard:
    """Archive a fine-tuned model (reversible). Raises like model_update, but no conflict."""
    return _set_archived(actor, model_id, True)


def model_unarchive(*, actor: Actor, model_id: str) -> remote.FineTunedModelCard:
    """Unarchive a fine-tuned model. Raises like model_archive."""
    return _set_archived(actor, model_id, False)


def model_delete(*, actor: Actor, model_id: str, reason: str) -> remote.DeleteResult:
    """Delete a fine-tuned model for good (team admins only).

    Raises PermissionDenied, MissingApiKey, UndecryptableApiKey, NotFineTuned or
    remote.ModelsApiError."""
    authorize(actor, "models_admin.delete_models")
    api, api_key = api_for(actor.user)
    _fine_tuned(api, model_id)
    result = api.delete_model(model_id)
    cache.delete(_inventory_cache_key(api_key))
    return result


# --------------------------------------------------------------------------- team


def member_add(
    *, actor: Actor, username: str, email: str, role: roles.Role, password: str | None
) -> User:
    """Create a team member with a role. Without a password the account can't sign in
    until its set-password link (see member_password_link) is used.

    Raises PermissionDenied."""
    authorize(actor, "models_admin.manage_team")
    with transaction.atomic():
        user = User(username=username, email=email)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        roles.set_role(user, role)
    return user


def member_password_link(*, actor: Actor, member: User) -> str:
    """A one-time set-password path for the member (valid PASSWORD_RESET_TIMEOUT).

    Raises PermissionDenied."""
    authorize(actor, "models_admin.manage_team")
    uid = urlsafe_base64_encode(force_bytes(member.pk))
    token = default_token_generator.make_token(member)
    return reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


def member_set_role(*, actor: Actor, member: User, role: roles.Role) -> None:
    """Change a member's role. Team admins can't demote themselves (a team must keep one).

    Raises PermissionDenied or ServiceError."""
    authorize(actor, "models_admin.manage_team")
    if member.pk == actor.user.pk and role != roles.Role.TEAM_ADMIN:
        raise ServiceError("You can't change your own role; ask another team admin.")
    roles.set_role(member, role)


def member_set_active(*, actor: Actor, member: User, active: bool) -> None:
    """Deactivate (can't sign in, sessions end) or reactivate a member.

    Raises PermissionDenied or ServiceError."""
    authorize(actor, "models_admin.manage_team")
    if member.pk == actor.user.pk:
        raise ServiceError("You can't deactivate yourself.")
    member.is_active = active
    member.save(update_fields=["is_active"])
