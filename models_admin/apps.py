from __future__ import annotations

from django.apps import AppConfig


class ModelsAdminConfig(AppConfig):
    name = "models_admin"
    verbose_name = "Mistral models"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from models_admin import crypto, roles

        # Unusable FIELD_ENCRYPTION_KEYS stop start-up, not the first save of a key.
        crypto.check_keys()
        post_migrate.connect(roles.sync_roles, sender=self, dispatch_uid="models_admin.sync_roles")
