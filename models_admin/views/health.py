"""Health checks for load balancers and orchestrators: no login, no upstream calls.

Served by middleware.HealthCheckMiddleware, ahead of host checks and the login requirement."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from models_admin.inventory import safe_cache

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 503 only when the database is unreachable, since nothing works without
    it. The cache is an accelerator: when it fails, the answer stays 200 with
    ``"cache": "degraded"`` (every host shares one Redis, so failing readiness on it
    would take them all out of the load balancer at once)."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:
        logger.exception("Readiness: database unreachable")
        checks["database"] = "unreachable"
    stored = safe_cache.set("readyz", "1", 5) and safe_cache.get("readyz") == "1"
    checks["cache"] = "ok" if stored else "degraded"
    ready = checks["database"] == "ok"
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503
    )
