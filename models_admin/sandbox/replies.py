"""The sandbox's responses: status, body and content type, shaped like the real API's
(see the reference's "Errors": at least four body shapes are in use)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from models_admin.sandbox.faults import FaultPlan

JSON: Final = "application/json"
# The real API sends this variant on some 422s; clients must not compare exactly.
JSON_UTF8: Final = "application/json; charset=utf-8"
TEXT: Final = "text/plain; charset=utf-8"
HTML: Final = "text/html; charset=utf-8"

GATEWAY_TEXTS: Final = {
    502: "upstream connect error or disconnect/reset before headers. reset reason: protocol error",
    503: "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    504: "upstream request timeout",
}
# Cloudflare's own error pages (api.mistral.ai sits behind it): status, title, what happened.
CLOUDFLARE_ERRORS: Final = {
    520: (
        "Web server is returning an unknown error",
        "the origin sent an empty or unexpected response",
    ),
    521: ("Web server is down", "the origin refused the connection"),
    522: ("Connection timed out", "the origin did not complete the TCP handshake"),
    523: ("Origin is unreachable", "Cloudflare could not route to the origin"),
    524: ("A timeout occurred", "the origin accepted the request but did not answer in time"),
}
MAINTENANCE_PAGE: Final = (
    "<!DOCTYPE html>\n<html><head><title>Maintenance</title></head>"
    "<body><h1>We'll be back soon</h1><p>The API is undergoing maintenance.</p></body></html>\n"
)


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any, *, content_type: str = JSON) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Reply(status, body, content_type)


def text_reply(status: int, text: str, *, content_type: str = TEXT) -> Reply:
    return Reply(status, text.encode(), content_type)


def request_id() -> str:
    return secrets.token_hex(16)


def object_error(status: int, message: str, *, error_type: str = "invalid_request_error") -> Reply:
    return json_reply(
        status,
        {"object": "error", "message": message, "type": error_type, "param": None, "code": None},
    )


def not_found(model_id: str) -> Reply:
    return object_error(404, f"Model '{model_id}' not found")


def unauthorized() -> Reply:
    return json_reply(401, {"message": "Unauthorized", "request_id": request_id()})


def no_route() -> Reply:
    return json_reply(
        404, {"message": "no Route matched with those values", "request_id": request_id()}
    )


def method_not_allowed(allowed: tuple[str, ...]) -> Reply:
    reply = json_reply(405, {"detail": "Method Not Allowed"})
    reply.headers["Allow"] = ", ".join(allowed)
    return reply


def validation_error(errors: list[dict[str, Any]]) -> Reply:
    return json_reply(422, {"detail": errors}, content_type=JSON_UTF8)


def cloudflare_page(status: int) -> Reply:
    """Cloudflare's HTML error page for 520-524, with its ``cf-ray`` header."""
    title, cause = CLOUDFLARE_ERRORS[status]
    ray = secrets.token_hex(8)
    page = (
        f'<!DOCTYPE html>\n<html lang="en-US"><head><title>api.mistral.ai | {status}: {title}'
        f'</title></head><body><div id="cf-wrapper"><h1>{title} <span>Error code {status}'
        f"</span></h1><p>What happened? {cause}.</p><p>Cloudflare Ray ID: <strong>{ray}"
        "</strong></p></div></body></html>\n"
    )
    reply = text_reply(status, page, content_type=HTML)
    reply.headers["cf-ray"] = f"{ray}-CDG"
    return reply


def rate_limited(headers: dict[str, str]) -> Reply:
    """The 429 of the sandbox's rate limiter (``headers``: Retry-After and x-ratelimit-*)."""
    reply = default_error(429)
    reply.headers.update(headers)
    return reply


def default_error(status: int) -> Reply:
    """The body the real API most plausibly sends for ``status`` (see the reference's Errors)."""
    if status in CLOUDFLARE_ERRORS:
        return cloudflare_page(status)
    if status == 401:
        return unauthorized()
    if status == 422:
        return validation_error(
            [
                {
                    "type": "value_error",
                    "loc": ["body"],
                    "msg": "Value error, the request could not be processed",
                    "input": None,
                    "ctx": {"error": "the request could not be processed"},
                }
            ]
        )
    if status == 429:
        return json_reply(
            429,
            {
                "object": "error",
                "message": "Rate limit exceeded",
                "type": "rate_limited",
                "param": None,
                "code": "1300",
                "raw_status_code": 429,
            },
        )
    if status in GATEWAY_TEXTS:
        return text_reply(status, GATEWAY_TEXTS[status])
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status >= 500:
        return json_reply(status, {"detail": phrase})
    return object_error(status, phrase)


def fault_reply(plan: FaultPlan) -> Reply:
    """The injected failure of ``plan``: its ``fail_body`` if set, else the default body."""
    assert plan.error_status is not None  # noqa: S101 - callers check first
    body = plan.error_body
    if isinstance(body, dict | list):
        reply = json_reply(plan.error_status, body)
    elif isinstance(body, str):
        reply = text_reply(plan.error_status, body)
    else:
        reply = default_error(plan.error_status)
    if plan.retry_after is not None:
        reply.headers["Retry-After"] = plan.retry_after
    return reply
