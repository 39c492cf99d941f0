"""Django admin: the audit log read-only (nobody edits history), keys without their secrets."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from models_admin.models import ApiCredential, AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("seq", "created_at", "actor_username", "action", "target_id", "kind", "outcome")
    list_filter = ("action", "kind", "outcome", "created_at")
    search_fields = ("actor_username", "target_id", "target_name", "reason")
    ordering = ("-seq",)
    show_full_result_count = False  # counting 100,000+ rows on every page is slow
    list_select_related = False

    def get_readonly_fields(self, request: HttpRequest, obj: AuditEntry | None = None) -> list[str]:
        return [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiCredential)
class ApiCredentialAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Shows who has a key and when it was used; never the key (only its masked form)."""

    list_display = ("user", "key_masked", "created_at", "updated_at", "verified_at", "last_used_at")
    search_fields = ("user__username",)
    fields = ("user", "key_masked", "created_at", "updated_at", "verified_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
