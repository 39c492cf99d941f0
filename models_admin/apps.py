from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class ModelsAdminConfig(AppConfig):
    name = "models_admin"
    verbose_name = "Mistral models"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from models_admin import access, checks, crypto, signals

        # Unusable FIELD_ENCRYPTION_KEYS stop start-up, not the first save of a key.
        crypto.check_keys()
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="models_admin.sync_roles")
        signals.connect()
        access.connect()
        checks.register_checks()


def _sync_roles(**kwargs: Any) -> None:
    """The role groups get the permissions declared in code (unrecorded: see signals.py)."""
    from models_admin import roles, signals

    with signals.recorded_by_service():
        roles.sync_roles(**kwargs)
