"""The user's own Mistral API key: read, save (checked with Mistral first), remove."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from models_admin import audit, crypto, remote
from models_admin.audit import Action, Actor, Outcome
from models_admin.logging import register_secret
from models_admin.models import ApiCredential
from models_admin.services.upstream import UpstreamSession, forget_inventory


def credential_get(*, user: User) -> ApiCredential | None:
    return ApiCredential.objects.filter(user=user).first()


@sensitive_variables("api_key", "old_key")
def credential_save(*, actor: Actor, api_key: str, verify: bool = True) -> ApiCredential:
    """Store the actor's key, encrypted, replacing any earlier one.

    With ``verify`` the key is checked first with a list call (whose result primes the
    model cache): raises remote.ApiAuthFailed if Mistral rejects it (nothing is stored)
    or another remote.ModelsApiError if Mistral can't be asked."""
    register_secret(api_key)
    action = Action.API_KEY_REPLACE if credential_get(user=actor.user) else Action.API_KEY_ADD
    verified_at = None
    if verify:
        try:
            UpstreamSession(api_key).inventory(refresh=True)
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
        forget_inventory(old_key)
    audit.event(
        actor=actor,
        action=action,
        credential=credential,
        changes={"key": [old_masked or None, credential.key_masked]},
        message="Checked with Mistral." if verify else "Saved without checking it with Mistral.",
    )
    return credential


@sensitive_variables("old_key")
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
        forget_inventory(old_key)
    return True


def _decrypt_or_none(credential: ApiCredential) -> str | None:
    try:
        return credential.get_key()
    except crypto.UndecryptableError:
        return None
