"""Authenticated encryption of stored API keys with cryptography's MultiFernet.

``settings.FIELD_ENCRYPTION_KEYS`` is a list of Fernet keys: the first encrypts,
every one of them decrypts. Rotation: put a new key first, run
``manage.py rotate_encryption_keys``, then drop the old key.

``key_digest`` names a key without keeping it: an HMAC under ``SECRET_KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables


@sensitive_variables("api_key")
def key_digest(api_key: str) -> str:
    """An API key's HMAC-SHA256 under ``SECRET_KEY`` (hex): what names a key where the
    key itself must not be kept (the inventory cache's key, the sync's ``SyncKey``)."""
    return hmac.new(settings.SECRET_KEY.encode(), api_key.encode(), hashlib.sha256).hexdigest()


class UndecryptableError(Exception):
    """The token was made with a key that is no longer configured (or was altered)."""


@lru_cache(maxsize=4)
def _fernets(keys: tuple[str, ...]) -> tuple[MultiFernet, Fernet]:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty; see .env.example.")
    try:
        fernets = [Fernet(key.encode()) for key in keys]
    except ValueError:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be comma-separated Fernet keys (32 url-safe "
            "base64-encoded bytes each); generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
        ) from None
    return MultiFernet(fernets), fernets[0]


def _configured() -> tuple[MultiFernet, Fernet]:
    return _fernets(tuple(settings.FIELD_ENCRYPTION_KEYS))


def check_keys() -> None:
    """Raise ImproperlyConfigured now if the configured keys are unusable."""
    _configured()


@sensitive_variables("plaintext")
def encrypt(plaintext: str) -> str:
    return _configured()[0].encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _configured()[0].decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableError() from None


def is_current(token: str) -> bool:
    """Whether the token is encrypted with the first (current) key."""
    try:
        _configured()[1].decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def rotate(token: str) -> str:
    """Re-encrypt a token with the current key. Raises UndecryptableError."""
    try:
        return _configured()[0].rotate(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableError() from None
