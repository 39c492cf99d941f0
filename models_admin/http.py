"""The typed request that views receive (django-htmx's HtmxDetails plus a real user)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class AuthedRequest(HttpRequest):
    user: User
    htmx: HtmxDetails
    id: str


def client_ip(request: HttpRequest) -> str | None:
    """The client's address. Behind DJANGO_TRUSTED_PROXY_COUNT proxies, each of which
    appends the address it saw to X-Forwarded-For, the client is that many entries from
    the right (anything further left could be forged by the client)."""
    count: int = settings.TRUSTED_PROXY_COUNT
    if count:
        header: str = request.META.get("HTTP_X_FORWARDED_FOR", "")
        forwarded = [part.strip() for part in header.split(",") if part.strip()]
        if len(forwarded) >= count:
            return forwarded[-count]
    remote_addr: str | None = request.META.get("REMOTE_ADDR") or None
    return remote_addr
