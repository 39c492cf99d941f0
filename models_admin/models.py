"""Database models: each user's encrypted Mistral API key, and the permissions of the roles."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from models_admin import crypto


def mask_key(api_key: str) -> str:
    """What may be shown of a key once it is saved: a few characters at each end."""
    if len(api_key) >= 20:
        return f"{api_key[:4]}…{api_key[-4:]}"
    if len(api_key) >= 12:
        return f"{api_key[:2]}…{api_key[-2:]}"
    return "…"


class ApiCredential(models.Model):
    """A user's Mistral API key, encrypted at rest (see crypto.py); shown only masked."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_credential"
    )
    key_encrypted = models.TextField(editable=False)
    key_masked = models.CharField("key", max_length=16, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    verified_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When Mistral last accepted this key."
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.user} ({self.key_masked})"

    def set_key(self, api_key: str) -> None:
        self.key_encrypted = crypto.encrypt(api_key)
        self.key_masked = mask_key(api_key)

    def get_key(self) -> str:
        """The plaintext key. Raises crypto.UndecryptableError."""
        return crypto.decrypt(self.key_encrypted)

    @property
    def is_decryptable(self) -> bool:
        try:
            self.get_key()
        except crypto.UndecryptableError:
            return False
        return True


class Access(models.Model):
    """Holds the app's permissions (no table). Roles (roles.py) are groups of these."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("browse_models", "Browse models"),
            ("change_models", "Rename, describe, archive and unarchive fine-tuned models"),
            ("delete_models", "Delete fine-tuned models"),
            ("manage_team", "Manage team members and their roles"),
        ]

    def __str__(self) -> str:
        return "permissions"
