"""Reading what Mistral sends: typed access to JSON bodies, error bodies and
``Retry-After``. Everything off-contract in a 2xx body becomes MalformedResponse;
every error answer becomes the ModelsApiError its status code names.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from models_admin.remote.errors import (
    ApiAuthFailed,
    ApiForbidden,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
    MalformedResponse,
    ModelNotFound,
    ModelsApiError,
    malformed,
)

MAX_UPSTREAM_MESSAGE: Final = 300
# Cloudflare (in front of api.mistral.ai) answers these with an HTML page of its own.
CLOUDFLARE_STATUSES: Final = frozenset({520, 521, 522, 523, 524})


class _Reader:
    """Typed access to one JSON object; anything off-contract raises MalformedResponse.

    ``quiet`` readers do not log what they raise: their caller (the tolerant card
    reader) catches it, keeps the card with the field flagged, and logs once."""

    def __init__(self, data: object, where: str, *, quiet: bool = False) -> None:
        self.where = where
        self.quiet = quiet
        if not isinstance(data, Mapping):
            raise self._fail(f"{where} is not an object")
        self.data: Mapping[str, Any] = data

    def _fail(self, detail: str) -> MalformedResponse:
        return MalformedResponse(upstream_message=detail) if self.quiet else malformed(detail)

    def _bad(self, key: str, expected: str) -> MalformedResponse:
        return self._fail(f"{self.where}.{key} should be {expected}")

    def required(self, key: str) -> Any:
        if key not in self.data:
            raise self._fail(f"{self.where}.{key} is missing")
        return self.data[key]

    def string(self, key: str) -> str:
        value = self.required(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def opt_string(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string or null")
        return value

    def integer(self, key: str) -> int:
        value = self.required(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer")
        return int(value)

    def opt_integer(self, key: str) -> int | None:
        return None if self.data.get(key) is None else self.integer(key)

    def number(self, key: str) -> float:
        value = self.required(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, "a number")
        return float(value)

    def opt_number(self, key: str) -> float | None:
        return None if self.data.get(key) is None else self.number(key)

    def boolean(self, key: str, *, default: bool | None = None) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, "a boolean")
        return value

    def array(self, key: str) -> list[Any]:
        value = self.required(key)
        if not isinstance(value, list):
            raise self._bad(key, "an array")
        return value

    def strings(self, key: str, *, required: bool = False) -> tuple[str, ...]:
        value = self.required(key) if required else self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "an array of strings")
        return tuple(value)

    def opt_mapping(self, key: str) -> Mapping[str, Any] | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise self._bad(key, "an object or null")
        return value

    def opt_datetime(self, key: str) -> datetime | None:
        value = self.opt_string(key)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise self._bad(key, "an RFC 3339 date-time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_json(response: httpx.Response, *, what: str) -> Any:
    """The decoded body of a 2xx answer; MalformedResponse if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise malformed(f"{what} answered {response.status_code} without JSON") from None


# ------------------------------------------------------------------------- error answers


@dataclass(frozen=True, slots=True)
class ErrorBody:
    message: str | None
    request_id: str | None
    field_errors: dict[str, list[str]]


def _detail_list(detail: list[Any], field_errors: dict[str, list[str]]) -> str | None:
    """FastAPI's ``detail: [{loc, msg, type}, ...]``: one message, plus errors per field."""
    parts = []
    for item in detail:
        if not isinstance(item, dict):
            continue
        msg = str(item.get("msg") or item.get("message") or "invalid value")
        loc = [str(p) for p in item.get("loc") or [] if p not in ("body", "query", "path")]
        name = loc[-1] if loc else "__all__"
        field_errors.setdefault(name, []).append(msg)
        parts.append(f"{name}: {msg}" if loc else msg)
    return "; ".join(parts) or None


def parse_error_body(response: httpx.Response) -> ErrorBody:
    """Read every error shape Mistral sends: ``detail`` (list or string), ``message`` +
    ``request_id``, ``{"object": "error", ...}`` and plain text (HTML pages are dropped)."""
    request_id = response.headers.get("x-request-id") or response.headers.get("x-kong-request-id")
    field_errors: dict[str, list[str]] = {}
    message: str | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):
            message = _detail_list(detail, field_errors)
        elif isinstance(detail, str):
            message = detail
        if message is None and isinstance(body.get("message"), str):
            message = body["message"]
        if isinstance(body.get("request_id"), str):
            request_id = body["request_id"]
    elif body is None:
        text = response.text.strip()
        if text and "<" not in text[:1]:
            message = text
    if message:
        message = " ".join(message.split())[:MAX_UPSTREAM_MESSAGE]
    return ErrorBody(message=message or None, request_id=request_id, field_errors=field_errors)


def retry_after_seconds(response: httpx.Response, *, now: datetime | None = None) -> float | None:
    """``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date (relative to ``now``)."""
    value = response.headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC, but parses as a naive datetime
        when = when.replace(tzinfo=UTC)
    return max(0.0, float((when - (now or datetime.now(UTC))).total_seconds()))


def error_for(response: httpx.Response) -> ModelsApiError:
    """The exception an error answer stands for, by status code."""
    status = response.status_code
    body = parse_error_body(response)
    common: dict[str, Any] = {
        "status": status,
        "request_id": body.request_id,
        "upstream_message": body.message,
    }
    said = f" Mistral said: “{body.message}”" if body.message else ""
    if status == 401:
        return ApiAuthFailed(**common)
    if status == 403:
        return ApiForbidden(f"Mistral does not allow your key to do this.{said}", **common)
    if status == 404:
        return ModelNotFound(**common)
    if status == 429:
        return ApiRateLimited(retry_after=retry_after_seconds(response), **common)
    if status in CLOUDFLARE_STATUSES:
        return ApiUnavailable(
            f"Mistral could not be reached through its network edge (HTTP {status}). "
            "Try again in a moment.",
            **common,
        )
    if status >= 500:
        return ApiUnavailable(
            f"Mistral is having trouble (HTTP {status}). Try again in a moment.", **common
        )
    if 400 <= status < 500:
        return ApiRejected(
            f"Mistral refused the request (HTTP {status}).{said}",
            field_errors=body.field_errors,
            **common,
        )
    return MalformedResponse(f"Mistral answered with an unexpected HTTP {status}.", **common)
