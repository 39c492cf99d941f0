"""Background work, for team admins: the scheduled upkeep and the task queue."""

from __future__ import annotations

from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from models_admin import upkeep
from models_admin.http import AuthedRequest
from models_admin.views.common import requires


@require_GET
@requires("models_admin.manage_team")
def background(request: AuthedRequest) -> HttpResponse:
    """Each scheduled task's last run, result and next run, and the queue's depth."""
    scheduled, queue = upkeep.status()
    return TemplateResponse(
        request, "models_admin/background.html", {"scheduled": scheduled, "queue": queue}
    )
