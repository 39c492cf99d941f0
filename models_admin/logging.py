"""Logging helpers: every record carries our request id, optionally as one JSON line.

Secrets never reach a log: the client never logs its Authorization header, and
``scrub`` removes any registered secret (the decrypted API key of the current request),
anything shaped like a bearer token and set-password tokens (the request log would
otherwise show ``GET /accounts/set-password/<uid>/<token>/``) from every record, as a
last line of defence.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_secrets_var: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "secrets", default=()
)

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
# A set-password token (Django's PasswordResetTokenGenerator: base-36 time, a dash, a
# hex HMAC), wherever it appears: the request log's path, a Referer, a traceback.
_RESET_TOKEN = re.compile(r"(?<![0-9A-Za-z])[0-9a-z]{1,13}-[0-9a-f]{20,}(?![0-9A-Za-z])")


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Scope the request id and the registered secrets to one request (threads are reused)."""
    id_token = request_id_var.set(request_id)
    secrets_token = _secrets_var.set(())
    try:
        yield
    finally:
        _secrets_var.reset(secrets_token)
        request_id_var.reset(id_token)


def register_secret(value: str) -> None:
    """Mark a value (e.g. a decrypted API key) as never-to-be-logged for this context."""
    if value and value not in _secrets_var.get():
        _secrets_var.set((*_secrets_var.get(), value))


def scrub(text: str) -> str:
    for secret in _secrets_var.get():
        text = text.replace(secret, "[redacted]")
    text = _RESET_TOKEN.sub("[redacted]", text)
    return _BEARER.sub(r"\1[redacted]", text)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` and scrubs secrets from the message and the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        path = getattr(record, "path", None)
        if isinstance(path, str):
            record.path = scrub(path)
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with secrets scrubbed from tracebacks too."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return scrub(super().formatException(ei))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (LOG_FORMAT=json), for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", request_id_var.get()),
            "message": record.getMessage(),
        }
        for key in ("method", "path", "status", "duration_ms", "user_id"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_info:
            payload["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter hides sensitive POST parameters and variables only with DEBUG
    off; this one hides them on the DEBUG error page too, where a developer's real key
    would otherwise show in full."""

    def is_active(self, request: HttpRequest | None) -> bool:
        return True
