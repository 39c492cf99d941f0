"""Who is acting, and from where: what every service receives and the audit log records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.models import User

if TYPE_CHECKING:
    from models_admin.http import AuthedRequest


@dataclass(frozen=True, slots=True)
class Actor:
    user: User
    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""

    @classmethod
    def from_request(cls, request: AuthedRequest) -> Actor:
        return cls(
            user=request.user,
            ip=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.headers.get("User-Agent", "")[:400],
            request_id=getattr(request, "id", ""),
        )
