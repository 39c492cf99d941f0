"""This user's upstream session: their stored key (read and decrypted once), the client
that calls Mistral with it, the key's cached inventory, and the credential that the
audit entries of its changes name."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from models_admin import access, crypto, memory, remote
from models_admin.compiled import CompiledLookup
from models_admin.inventory import Inventory
from models_admin.inventory import shared as inventories
from models_admin.logging import register_secret
from models_admin.models import ApiCredential
from models_admin.services.errors import MissingApiKey, UndecryptableApiKey

# last_used_at is bumped at most this often, so browsing costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _inventory_cache_key(api_key: str) -> str:
    return f"inventory:v4:{crypto.key_digest(api_key)[:40]}"


@sensitive_variables("api_key")
def forget_inventory(api_key: str) -> None:
    """Drop the cached inventory of a key (one being replaced or removed)."""
    inventories.forget(_inventory_cache_key(api_key))


class UpstreamSession:
    """Mistral, as one user: ``api`` (a client with their key), the key's inventory in
    the shared cache, and ``credential`` (None only while a new key is being checked).

    A bulk job shares one session between its items: the key is decrypted once, the
    calls share one RateGate, and ``pin_inventory`` spares a read per model."""

    __slots__ = ("_cache_key", "_changed", "_pinned", "api", "credential")

    @sensitive_variables("api_key")
    def __init__(
        self,
        api_key: str,
        *,
        credential: ApiCredential | None = None,
        gate: remote.RateGate | None = None,
    ) -> None:
        register_secret(api_key)
        self.api = remote.ModelsApi(api_key=api_key, gate=gate)
        self.credential = credential
        self._cache_key = _inventory_cache_key(api_key)
        self._pinned: dict[str, remote.ModelCard] | None = None
        self._changed: set[str] = set()  # models changed through this session

    def __repr__(self) -> str:
        owner = f"credential #{self.credential.pk}" if self.credential else "an unsaved key"
        return f"<UpstreamSession with {owner}>"

    def inventory(self, *, refresh: bool = False) -> Inventory:
        """Every model the key can see: the cached inventory, or one list call (which
        refreshes the cache). Raises remote.ModelsApiError."""
        if not refresh and (cached := self.cached_inventory()) is not None:
            return cached
        cards = self.api.list_models()
        inventory = dataclasses.replace(
            Inventory.build(cards),
            key_masked=self.credential.key_masked if self.credential else "",
            read_at=timezone.now(),
        )
        inventories.set(self._cache_key, inventory, cards.raw)
        size = len(cards.raw)
        del cards  # the body and the list: freed before their memory is handed back
        memory.release_after(size)
        return inventory

    def cached_inventory(self) -> Inventory | None:
        return inventories.get(self._cache_key)

    def pin_inventory(self) -> None:
        """Read the inventory once (cache or list call) and take its cards as current for
        the rest of the session, instead of reading each model before changing it.
        Raises remote.ModelsApiError."""
        self._pinned = {row.id: row.card for row in self.inventory().rows}

    def known_card(self, model_id: str) -> remote.ModelCard | None:
        """The model's card as last seen, without asking Mistral (pinned, else cached);
        None when it is not known or was changed through this session since."""
        if model_id in self._changed:
            return None
        if self._pinned is not None:
            return self._pinned.get(model_id)
        inventory = self.cached_inventory()
        row = inventory.find(model_id) if inventory else None
        return row.card if row else None

    def pinned_card(self, model_id: str) -> remote.ModelCard | None:
        """The pinned card of a model not changed through this session since, if any."""
        if self._pinned is None or model_id in self._changed:
            return None
        return self._pinned.get(model_id)

    def current_card(self, model_id: str) -> remote.ModelCard:
        """The card to change the model from: the pinned one, else fresh from Mistral.
        Raises remote.ModelsApiError (ModelNotFound when it is gone)."""
        return self.pinned_card(model_id) or self.api.retrieve_model(model_id)

    def read_back(self, model_id: str) -> remote.ModelCard | None:
        """The model as Mistral has it now, None when it is gone. Raises
        remote.ModelsApiError."""
        try:
            return self.api.retrieve_model(model_id)
        except remote.ModelNotFound:
            return None

    def changed(self, model_id: str) -> None:
        """Call once a change has gone upstream: the cached inventory is out of date."""
        self._changed.add(model_id)
        inventories.forget(self._cache_key)


# The user's stored key, read once per page that calls Mistral.
_credential_of: CompiledLookup[ApiCredential] = CompiledLookup(
    ApiCredential, lambda user_id: ApiCredential.objects.filter(user_id=user_id)
)


def cached_inventory_of(user: User) -> Inventory | None:
    """The user's key's inventory from the cache, without reading or decrypting the key:
    which inventory it reads is remembered with the access generation (access.py), so a
    key replaced or removed since is never taken for the current one."""
    cache_key = access.recall(user, "inventory_key")
    return inventories.get(cache_key) if isinstance(cache_key, str) else None


@sensitive_variables("api_key")
def upstream_session(user: User, *, gate: remote.RateGate | None = None) -> UpstreamSession:
    """Mistral as the user, with their own stored key; ``gate`` is shared by the calls of
    a bulk job. Raises MissingApiKey or UndecryptableApiKey."""
    credential = _credential_of.first(user.pk)
    if credential is None:
        raise MissingApiKey()
    try:
        api_key = credential.get_key()
    except crypto.UndecryptableError:
        raise UndecryptableApiKey() from None
    now = timezone.now()
    if credential.last_used_at is None or now - credential.last_used_at > LAST_USED_RESOLUTION:
        ApiCredential.objects.filter(pk=credential.pk).update(last_used_at=now)
    session = UpstreamSession(api_key, credential=credential, gate=gate)
    access.remember(user, "inventory_key", session._cache_key)
    return session
