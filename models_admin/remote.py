"""Client for Mistral's model-management API. The only module that imports httpx.

It speaks the six operations of ../shared/reference/mistral-models-api.md (list,
retrieve, delete, update, archive, unarchive), turns JSON into frozen dataclasses,
and turns every failure into one exception tree whose ``.message`` is safe to show
a user (it never contains the API key or a raw response body):

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

Retries: 429/500/502/503/504, connection errors and timeouts are retried with
exponential backoff and jitter, ``Retry-After`` honoured, within a total time
budget (see RetryPolicy). All six operations are idempotent in effect (PATCH sets
absolute values, archive/unarchive set a state, DELETE of a gone model is a 404),
so each may be retried. A delete whose earlier attempt ended ambiguously and whose
retry gets 404 counts as deleted.

One pooled httpx.Client per process is shared by every ModelsApi (keep-alive);
the user's key travels on each request's Authorization header and is never logged.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote

import httpx
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

logger = logging.getLogger(__name__)

USER_AGENT: Final = "mistral-models-dashboard/0.1 (+httpx)"
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
# Answers after which the request may have been carried out anyway.
AMBIGUOUS_STATUSES: Final = frozenset({500, 502, 504})
MAX_UPSTREAM_MESSAGE: Final = 300

# Capability flags in the order of the reference (SPEC, Aug 2026). The API keeps
# adding flags: unknown ones are kept, missing ones read as False.
KNOWN_CAPABILITIES: Final = (
    "completion_chat",
    "function_calling",
    "reasoning",
    "completion_fim",
    "fine_tuning",
    "vision",
    "ocr",
    "classification",
    "moderation",
    "audio",
    "audio_transcription",
    "audio_transcription_realtime",
    "audio_speech",
    "unified_resources",
)


# --------------------------------------------------------------------------- errors


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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Capabilities:
    """The capability flags that are true. Unknown flags are kept."""

    enabled: frozenset[str] = frozenset()

    def __contains__(self, flag: object) -> bool:
        return flag in self.enabled

    @property
    def ordered(self) -> tuple[str, ...]:
        known = [flag for flag in KNOWN_CAPABILITIES if flag in self.enabled]
        return (*known, *sorted(self.enabled.difference(KNOWN_CAPABILITIES)))

    @classmethod
    def from_json(cls, data: object, *, where: str) -> Capabilities:
        if not isinstance(data, Mapping):
            raise _malformed(f"{where}.capabilities is not an object")
        return cls(frozenset(str(name) for name, value in data.items() if value is True))


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """A card from list or retrieve: the fields every ``type`` shares."""

    id: str
    type: str
    object: str
    created: int | None
    owned_by: str
    name: str | None
    description: str | None
    max_context_length: int
    aliases: tuple[str, ...]
    deprecation: datetime | None
    deprecation_replacement_model: str | None
    default_model_temperature: float | None
    internal: bool
    capabilities: Capabilities
    billing_model_name: str | None
    # Fields the reference does not describe, kept so the detail page can show them.
    extra: tuple[tuple[str, Any], ...] = ()

    is_fine_tuned: ClassVar[bool] = False
    is_base: ClassVar[bool] = False

    COMMON_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "id",
            "type",
            "object",
            "created",
            "owned_by",
            "name",
            "description",
            "max_context_length",
            "aliases",
            "deprecation",
            "deprecation_replacement_model",
            "default_model_temperature",
            "internal",
            "capabilities",
            "billing_model_name",
        }
    )
    OWN_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @property
    def created_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.created, tz=UTC) if self.created is not None else None

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @classmethod
    def _common(cls, r: _Reader) -> dict[str, Any]:
        known = cls.COMMON_FIELDS | cls.OWN_FIELDS
        return {
            "id": r.string("id"),
            "type": r.opt_string("type") or "unknown",
            "object": r.opt_string("object") or "model",
            "created": r.opt_integer("created"),
            "owned_by": r.opt_string("owned_by") or "",
            "name": r.opt_string("name"),
            "description": r.opt_string("description"),
            "max_context_length": r.opt_integer("max_context_length") or 32768,
            "aliases": r.strings("aliases"),
            "deprecation": r.opt_datetime("deprecation"),
            "deprecation_replacement_model": r.opt_string("deprecation_replacement_model"),
            "default_model_temperature": r.opt_number("default_model_temperature"),
            "internal": r.boolean("internal", default=False),
            "capabilities": Capabilities.from_json(r.required("capabilities"), where=r.where),
            "billing_model_name": r.opt_string("billing_model_name"),
            "extra": tuple(sorted((k, v) for k, v in r.data.items() if k not in known)),
        }

    @staticmethod
    def from_json(data: Any, *, where: str = "model") -> ModelCard:
        """Parse one card, picking the class by its ``type`` discriminator."""
        r = _Reader(data, where)
        card_type = r.opt_string("type")
        if card_type == "base":
            return BaseModelCard.parse(r)
        if card_type == "fine-tuned":
            return FineTunedModelCard.parse(r)
        return UnknownModelCard.parse(r)

    @classmethod
    def parse(cls, r: _Reader) -> ModelCard:
        return cls(**cls._common(r))


@dataclass(frozen=True, kw_only=True)
class BaseModelCard(ModelCard):
    """``type: "base"``: one of Mistral's own models (or one of its aliases)."""

    audio_transcription_capabilities: Mapping[str, Any] | None = None
    audio_speech_capabilities: Mapping[str, Any] | None = None

    is_base: ClassVar[bool] = True
    OWN_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"audio_transcription_capabilities", "audio_speech_capabilities"}
    )

    @classmethod
    def parse(cls, r: _Reader) -> BaseModelCard:
        return cls(
            **cls._common(r),
            audio_transcription_capabilities=r.opt_mapping("audio_transcription_capabilities"),
            audio_speech_capabilities=r.opt_mapping("audio_speech_capabilities"),
        )


@dataclass(frozen=True, kw_only=True)
class FineTunedModelCard(ModelCard):
    """``type: "fine-tuned"``: a model trained by the caller's organisation."""

    job: str
    root: str
    archived: bool

    is_fine_tuned: ClassVar[bool] = True
    OWN_FIELDS: ClassVar[frozenset[str]] = frozenset({"job", "root", "archived"})

    @property
    def is_classifier(self) -> bool:
        return self.id.startswith("ft:classifier:")

    @classmethod
    def parse(cls, r: _Reader) -> FineTunedModelCard:
        return cls(
            **cls._common(r),
            job=r.string("job"),
            root=r.string("root"),
            archived=r.boolean("archived", default=False),
        )


@dataclass(frozen=True, kw_only=True)
class UnknownModelCard(ModelCard):
    """A card whose ``type`` this dashboard does not know yet (the API keeps adding them)."""

    @classmethod
    def parse(cls, r: _Reader) -> UnknownModelCard:
        return cls(**cls._common(r))


@dataclass(frozen=True)
class ClassifierTarget:
    name: str
    labels: tuple[str, ...]
    weight: float
    loss_function: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatedModel:
    """The PATCH response: CompletionFineTunedModel or ClassifierFineTunedModel (``model_type``)."""

    id: str
    model_type: str
    object: str
    created: int
    owned_by: str
    workspace_id: str
    root: str
    root_version: str
    archived: bool
    name: str | None
    description: str | None
    capabilities: Capabilities
    max_context_length: int
    aliases: tuple[str, ...]
    job: str | None
    classifier_targets: tuple[ClassifierTarget, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> UpdatedModel:
        r = _Reader(data, "updated model")
        model_type = r.opt_string("model_type") or "completion"
        targets: list[ClassifierTarget] = []
        if model_type == "classifier":
            for i, item in enumerate(r.array("classifier_targets")):
                t = _Reader(item, f"classifier_targets[{i}]")
                targets.append(
                    ClassifierTarget(
                        name=t.string("name"),
                        labels=t.strings("labels", required=True),
                        weight=t.number("weight"),
                        loss_function=t.string("loss_function"),
                    )
                )
        return cls(
            id=r.string("id"),
            model_type=model_type,
            object=r.opt_string("object") or "model",
            created=r.integer("created"),
            owned_by=r.string("owned_by"),
            workspace_id=r.string("workspace_id"),
            root=r.string("root"),
            root_version=r.string("root_version"),
            archived=r.boolean("archived"),
            name=r.opt_string("name"),
            description=r.opt_string("description"),
            capabilities=Capabilities.from_json(r.required("capabilities"), where=r.where),
            max_context_length=r.opt_integer("max_context_length") or 32768,
            aliases=r.strings("aliases"),
            job=r.opt_string("job"),
            classifier_targets=tuple(targets),
        )


@dataclass(frozen=True, slots=True)
class DeleteResult:
    id: str
    deleted: bool
    # True when an earlier attempt ended without an answer and the retry found the
    # model gone (404): the first attempt did the delete.
    confirmed_by_retry: bool = False


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    id: str
    archived: bool


# --------------------------------------------------------------------------- parsing


def _malformed(detail: str) -> MalformedResponse:
    logger.warning("Malformed response from Mistral: %s", detail)
    return MalformedResponse(upstream_message=detail)


class _Reader:
    """Typed access to one JSON object; anything off-contract raises MalformedResponse."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise _malformed(f"{where} is not an object")
        self.data: Mapping[str, Any] = data
        self.where = where

    def _bad(self, key: str, expected: str) -> MalformedResponse:
        return _malformed(f"{self.where}.{key} should be {expected}")

    def required(self, key: str) -> Any:
        if key not in self.data:
            raise _malformed(f"{self.where}.{key} is missing")
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


@dataclass(frozen=True, slots=True)
class _ErrorBody:
    message: str | None
    request_id: str | None
    field_errors: dict[str, list[str]]


def _parse_error_body(response: httpx.Response) -> _ErrorBody:
    """Read every error shape Mistral sends: ``detail`` (list or string), ``message`` +
    ``request_id``, ``{"object": "error", ...}`` and plain text."""
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
            parts = []
            for item in detail:
                if not isinstance(item, dict):
                    continue
                msg = str(item.get("msg") or item.get("message") or "invalid value")
                loc = [str(p) for p in item.get("loc") or [] if p not in ("body", "query", "path")]
                name = loc[-1] if loc else "__all__"
                field_errors.setdefault(name, []).append(msg)
                parts.append(f"{name}: {msg}" if loc else msg)
            message = "; ".join(parts) or None
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
    return _ErrorBody(message=message or None, request_id=request_id, field_errors=field_errors)


def _retry_after_seconds(response: httpx.Response) -> float | None:
    """``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date."""
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
    return max(0.0, float((when - datetime.now(UTC)).total_seconds()))


def _error_for(response: httpx.Response) -> ModelsApiError:
    status = response.status_code
    body = _parse_error_body(response)
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
        return ApiRateLimited(retry_after=_retry_after_seconds(response), **common)
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


# --------------------------------------------------------------------------- transport

_pool_lock = threading.Lock()
_pool: httpx.Client | None = None
_pool_pid: int | None = None


def http_pool() -> httpx.Client:
    """The process-wide httpx.Client (re-created after a fork, e.g. in gunicorn workers)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = httpx.Client(
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                limits=httpx.Limits(
                    max_connections=64, max_keepalive_connections=32, keepalive_expiry=30
                ),
                follow_redirects=False,
                trust_env=False,
            )
            _pool_pid = os.getpid()
        return _pool


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait between attempts. Sleep, clock and randomness are
    injectable so tests can count attempts and waits without waiting."""

    max_retries: int = 3
    backoff: float = 0.5  # seconds before the first retry
    multiplier: float = 2.0
    max_backoff: float = 8.0
    jitter: float = 0.25  # each wait is scaled by a random factor in [1 - jitter, 1 + jitter]
    budget: float = 20.0  # no retry starts if it would end past this many seconds in total
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            max_retries=settings.MISTRAL_API_MAX_RETRIES,
            backoff=settings.MISTRAL_API_RETRY_BACKOFF,
            max_backoff=settings.MISTRAL_API_RETRY_MAX_BACKOFF,
            budget=settings.MISTRAL_API_RETRY_BUDGET,
        )

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None and retry_after > 0:
            return retry_after
        base = min(self.max_backoff, self.backoff * self.multiplier**retry)
        return base * (1 - self.jitter + 2 * self.jitter * self.random())


class RateGate:
    """Shared by calls that run side by side (a bulk job): when Mistral tells one of
    them to wait (429), every call waits, instead of each hammering on until told."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._open_at = 0.0

    def hold(self, seconds: float) -> None:
        """Close the gate for ``seconds`` (or keep it closed longer if it already is)."""
        with self._lock:
            self._open_at = max(self._open_at, self._clock() + seconds)

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._open_at - self._clock())

    def wait(self, *, at_most: float) -> bool:
        """Wait until the gate opens; False (without waiting) if that is past ``at_most`` seconds."""
        delay = self.remaining()
        if delay > at_most:
            return False
        if delay > 0:
            self._sleep(delay)
        return True


class _Unset:
    """Marker for "leave this field out of the PATCH body"."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


def _valid_model_id(model_id: str) -> str:
    """Percent-encode a model id for one path segment. ``:`` stays (ids are full of it);
    ``/``, ``?``, ``#``, ``%`` and the rest are encoded; dot segments are refused."""
    if (
        not model_id
        or model_id in {".", ".."}
        or len(model_id) > 256
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in model_id)
    ):
        raise InvalidModelId()
    return quote(model_id, safe=":@-._~")


class ModelsApi:
    """The six operations, for one API key. Cheap to create: the connections are pooled."""

    @sensitive_variables("api_key")
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        gate: RateGate | None = None,
    ) -> None:
        self.gate = gate
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self.base_url = (base_url or settings.MISTRAL_API_URL).rstrip("/")
        self.timeout = httpx.Timeout(
            timeout if timeout is not None else settings.MISTRAL_API_TIMEOUT,
            connect=connect_timeout
            if connect_timeout is not None
            else settings.MISTRAL_API_CONNECT_TIMEOUT,
        )
        self.retry = retry or RetryPolicy.from_settings()
        self.calls = 0  # HTTP attempts made through this instance (for tests and benchmarks)

    def __repr__(self) -> str:
        return f"<ModelsApi {self.base_url}>"

    # -- the six operations

    def list_models(
        self, *, provider: str | None = None, model: str | None = None
    ) -> tuple[ModelCard, ...]:
        """``GET /v1/models``: every model the key can see, base and fine-tuned.

        Raises ModelsApiError."""
        params = {k: v for k, v in {"provider": provider, "model": model}.items() if v is not None}
        body = self._request("GET", "/v1/models", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("data", []), list):
            raise _malformed("model list is not {'object': 'list', 'data': [...]}")
        return tuple(
            ModelCard.from_json(item, where=f"data[{i}]")
            for i, item in enumerate(body.get("data", []))
        )

    def retrieve_model(self, model_id: str) -> ModelCard:
        """``GET /v1/models/{id}``. Raises ModelNotFound or another ModelsApiError."""
        return ModelCard.from_json(self._request("GET", f"/v1/models/{_valid_model_id(model_id)}"))

    def delete_model(self, model_id: str) -> DeleteResult:
        """``DELETE /v1/models/{id}``. Raises ApiForbidden for base models, ModelNotFound,
        or another ModelsApiError. A retry that finds the model gone counts as deleted."""
        path = f"/v1/models/{_valid_model_id(model_id)}"
        try:
            body = self._request("DELETE", path)
        except ModelNotFound as exc:
            if exc.ambiguous:
                logger.info("Delete of %s confirmed by a retry that found it gone", model_id)
                return DeleteResult(id=model_id, deleted=True, confirmed_by_retry=True)
            raise
        r = _Reader(body, "delete response")
        return DeleteResult(id=r.string("id"), deleted=r.boolean("deleted", default=True))

    def update_model(
        self,
        model_id: str,
        *,
        name: str | None | _Unset = UNSET,
        description: str | None | _Unset = UNSET,
    ) -> UpdatedModel:
        """``PATCH /v1/fine_tuning/models/{id}`` with the given fields (UNSET leaves one out).

        Raises ApiRejected (with field errors) on 422, or another ModelsApiError."""
        payload = {
            key: value
            for key, value in {"name": name, "description": description}.items()
            if not isinstance(value, _Unset)
        }
        path = f"/v1/fine_tuning/models/{_valid_model_id(model_id)}"
        return UpdatedModel.from_json(self._request("PATCH", path, json=payload))

    def archive_model(self, model_id: str) -> ArchiveResult:
        """``POST /v1/fine_tuning/models/{id}/archive``. Raises ModelsApiError."""
        return self._archive("POST", model_id, default=True)

    def unarchive_model(self, model_id: str) -> ArchiveResult:
        """``DELETE /v1/fine_tuning/models/{id}/archive``. Raises ModelsApiError."""
        return self._archive("DELETE", model_id, default=False)

    def _archive(self, method: str, model_id: str, *, default: bool) -> ArchiveResult:
        body = self._request(method, f"/v1/fine_tuning/models/{_valid_model_id(model_id)}/archive")
        r = _Reader(body, "archive response")
        return ArchiveResult(id=r.string("id"), archived=r.boolean("archived", default=default))

    # -- transport

    # Hides every local (httpx's frames below hold the Authorization header) from error reports.
    @sensitive_variables()
    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        """One call with retries. Returns the decoded JSON body of a 2xx answer;
        raises a ModelsApiError whose ``ambiguous`` says whether any attempt may have
        been carried out without us learning it."""
        policy = self.retry
        started = policy.clock()
        url = self.base_url + path
        retry = 0
        ambiguous = False
        while True:
            if self.gate is not None and not self.gate.wait(
                at_most=policy.budget - (policy.clock() - started)
            ):
                # Siblings were told to wait longer than this call may take: give up now.
                raise ApiRateLimited(retry_after=self.gate.remaining(), status=429)
            self.calls += 1
            error: ModelsApiError
            retry_after: float | None = None
            try:
                response = http_pool().request(
                    method,
                    url,
                    params=params,
                    json=json if method in {"PATCH", "POST", "PUT"} and json is not None else None,
                    headers=self._auth,
                    timeout=self.timeout,
                )
            except httpx.TimeoutException as exc:
                ambiguous = ambiguous or not isinstance(exc, httpx.ConnectTimeout)
                error = ApiTimeout()
                cause: BaseException = exc
            except httpx.TransportError as exc:
                ambiguous = ambiguous or not isinstance(exc, httpx.ConnectError)
                error = ApiUnavailable()
                cause = exc
            else:
                if response.is_success:
                    try:
                        return response.json()
                    except ValueError:
                        raise _malformed(
                            f"{method} {path} answered {response.status_code} without JSON"
                        ) from None
                error = _error_for(response)
                cause = error
                ambiguous = ambiguous or response.status_code in AMBIGUOUS_STATUSES
                if response.status_code not in RETRY_STATUSES:
                    error.ambiguous = ambiguous
                    raise error
                retry_after = _retry_after_seconds(response)

            wait = policy.delay(retry, retry_after)
            if self.gate is not None and isinstance(error, ApiRateLimited):
                self.gate.hold(wait)
            elapsed = policy.clock() - started
            if retry >= policy.max_retries or elapsed + wait > policy.budget:
                logger.warning(
                    "Mistral %s %s failed after %d attempt(s): %s (status %s)",
                    method,
                    path,
                    retry + 1,
                    type(error).__name__,
                    error.status,
                )
                error.ambiguous = ambiguous
                if cause is error:
                    raise error
                raise error from cause
            logger.info(
                "Mistral %s %s: %s (status %s); retry %d in %.2fs",
                method,
                path,
                type(error).__name__,
                error.status,
                retry + 1,
                wait,
            )
            policy.sleep(wait)
            retry += 1
