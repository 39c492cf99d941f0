"""The one exception tree of the client. Every failure leaves as a ModelsApiError,
whose ``.message`` is safe to show a user (it never holds the API key or a raw body):

    ModelsApiError          .message, .status, .request_id (upstream's, when sent)
    ├── ApiUnavailable      connection error, timeout, 5xx (after retries)
    │   └── ApiTimeout      no answer within MISTRAL_API_TIMEOUT
    ├── ApiAuthFailed       401: key missing, revoked or for another workspace
    │   └── ApiForbidden    403: key accepted but not allowed (e.g. deleting a base model)
    ├── ModelNotFound       404: no such model
    │   └── InvalidModelId  an id that cannot name a model; never sent upstream
    ├── ApiRejected         400/409/422 and other 4xx: .field_errors {field: [messages]}
    ├── ApiRateLimited      429 after retries: .retry_after seconds (or None)
    └── MalformedResponse   a 2xx body that does not follow the contract
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

logger = logging.getLogger(__name__)


class ModelsApiError(Exception):
    """Base of every client failure. ``message`` is safe to show to a user."""

    default_message: ClassVar[str] = "The Mistral API call failed."
    # True when a request of this call may have reached Mistral without us learning the
    # result (a read timeout, a dropped connection, a 500/502/504): a change may have
    # happened anyway.
    ambiguous: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        request_id: str | None = None,
        upstream_message: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.status = status
        self.request_id = request_id
        self.upstream_message = upstream_message
        super().__init__(self.message)


class ApiUnavailable(ModelsApiError):
    default_message = "Mistral did not answer. Try again in a moment."


class ApiTimeout(ApiUnavailable):
    default_message = "Mistral did not answer in time. Try again in a moment."


class ApiAuthFailed(ModelsApiError):
    default_message = "Mistral rejected your API key. Check or replace it on your API key page."


class ApiForbidden(ApiAuthFailed):
    default_message = "Mistral does not allow your key to do this."


class ModelNotFound(ModelsApiError):
    default_message = "That model does not exist on Mistral (any more)."


class InvalidModelId(ModelNotFound):
    default_message = "That is not a valid model id."


class ApiRejected(ModelsApiError):
    default_message = "Mistral refused the request."

    def __init__(
        self,
        message: str | None = None,
        *,
        field_errors: Mapping[str, list[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.field_errors: dict[str, list[str]] = dict(field_errors or {})


class ApiRateLimited(ModelsApiError):
    default_message = "Mistral is rate-limiting your key. Try again shortly."

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        if message is None and retry_after is not None:
            message = (
                f"Mistral is rate-limiting your key. Try again in {max(1, round(retry_after))} s."
            )
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class MalformedResponse(ModelsApiError):
    default_message = (
        "Mistral sent a response the dashboard could not read. Try again; "
        "if it keeps happening, Mistral's API may have changed."
    )


def malformed(detail: str) -> MalformedResponse:
    """A MalformedResponse for ``detail`` (logged: it means the contract changed)."""
    logger.warning("Malformed response from Mistral: %s", detail)
    return MalformedResponse(upstream_message=detail)
