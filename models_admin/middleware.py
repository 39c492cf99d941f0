"""Request-scoped plumbing: our request id, and one log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers, patch_vary_headers

from models_admin import signals
from models_admin.logging import request_context
from models_admin.views import health

logger = logging.getLogger("models_admin.requests")

_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class HealthCheckMiddleware:
    """Answers /healthz and /readyz first, before host validation (a load balancer or
    Docker asks by IP address), HTTPS redirects and the login requirement."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz":
            return health.healthz(request)
        if request.path == "/readyz":
            return health.readyz(request)
        return self.get_response(request)


class RequestIdMiddleware:
    """Gives every request an id (``request.id``, the ``X-Request-ID`` response header,
    every log record, every audit entry). A well-formed incoming ``X-Request-ID`` from
    the load balancer is kept so both logs can be joined."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        request.id = request_id  # type: ignore[attr-defined]
        started = time.perf_counter()
        with request_context(request_id), signals.acting_request(request):
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            user = getattr(request, "user", None)
            user_id = user.pk if user is not None and user.is_authenticated else None
            logger.info(
                "%s %s %s %.1fms",
                request.method,
                request.path,
                response.status_code,
                duration_ms,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                    "user_id": user_id,
                },
            )
            return response


class HtmxMessagesMiddleware:
    """Deliver Django messages on htmx responses too, as an out-of-band swap of
    ``#alerts`` (a full page renders them in base.html); redirects keep their messages
    for the page they lead to. Also marks every response as varying on HX-Request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        # The same URL answers a fragment to htmx and a page to the browser: caches
        # (and the Back button) must keep them apart.
        patch_vary_headers(response, ("HX-Request",))
        if htmx and not htmx.history_restore_request:
            add_never_cache_headers(response)
        if (
            not htmx
            or htmx.boosted
            or response.streaming
            or 300 <= response.status_code < 400
            or any(h in response for h in ("HX-Redirect", "HX-Refresh", "HX-Location"))
            or not response.get("Content-Type", "").startswith("text/html")
        ):
            return response
        storage = messages.get_messages(request)
        if not len(storage):
            return response
        html = render_to_string(
            "models_admin/_alerts.html", {"messages": storage, "oob": True}, request
        )
        response.content = response.content + html.encode()
        return response
