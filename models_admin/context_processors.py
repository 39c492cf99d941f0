"""What the current user may do, for showing or hiding controls: the one source of the
templates' permission flags (no ``perms.`` in templates). Only cosmetic: every service
checks the permission again before acting."""

from __future__ import annotations

from django.http import HttpRequest


def abilities(request: HttpRequest) -> dict[str, bool]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "can_change": user.has_perm("models_admin.change_models"),
        "can_delete": user.has_perm("models_admin.delete_models"),
        "can_manage_team": user.has_perm("models_admin.manage_team"),
        "can_view_audit": user.has_perm("models_admin.view_auditentry"),
        "can_export_audit": user.has_perm("models_admin.export_auditentry"),
    }


def csp_nonce(request: HttpRequest) -> dict[str, str]:
    """The request's Content-Security-Policy nonce, under the name django-htmx's
    ``{% htmx_script %}`` looks for."""
    return {"csp_nonce": str(getattr(request, "csp_nonce", ""))}
