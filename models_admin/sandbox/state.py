"""Sandbox state: per-key workspaces, injectable faults and the request log.

Everything here is shared by the server's request threads, so every mutation
happens under a lock: ``SandboxState`` guards the workspace table and the log,
each ``Workspace`` guards its own models, and ``Faults`` guards its fields and
one-shot counters (a counter is read and decremented in one step by ``plan``).

Workspace cards are replaced, never mutated in place (copy on write), so a reader
holding a snapshot of ``models.values()`` can serialise it without a lock.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

from models_admin.sandbox import seed

MALFORMED_KINDS: Final = frozenset({"truncated", "html", "wrong_shape"})
NAME_MAX_LENGTH: Final = 128
DESCRIPTION_MAX_LENGTH: Final = 2048


def fingerprint(api_key: str) -> str:
    """sha256 hex of a key: what the log keeps instead of the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One ``/v1/...`` request as it arrived."""

    method: str
    path: str  # raw, still percent-encoded, without the query string
    query: dict[str, str]
    json: Any | None  # decoded body; None when there was none or it was not JSON
    key_fingerprint: str | None  # fingerprint() of the bearer token, None without one
    peer: str = ""  # client "host:port": distinct values = distinct connections (keep-alive checks)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- faults


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What the faults decided for one request, taken atomically on arrival."""

    latency_s: float = 0.0
    hang_s: float = 0.0
    hang_after: bool = False
    error_status: int | None = None
    error_body: Any = None
    retry_after: str | None = None
    malformed: str | None = None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return value


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def _check_status(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise ValueError(f"{name} must be an HTTP error status (400-599), got {value!r}")
    return value


@dataclass
class Faults:
    """Failures injected into ``/v1/`` requests; see the server module for the order.

    ``clear()`` returns to how this object was constructed (the server's
    ``latency_ms`` and nothing else). ``error_rate`` draws from a ``random.Random``
    reseeded with ``seed`` whenever ``error_rate`` or ``seed`` is set, so one
    configuration yields the same pass/fail sequence every time. With
    ``fail_times`` set and ``fail_status`` None, the forced failures use
    ``error_status``.
    """

    latency_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    fail_status: int | None = None
    fail_times: int = 0
    fail_body: Any = None
    retry_after: str | None = None
    malformed_times: int = 0
    malformed_kind: str = "truncated"
    hang_s: float = 0.0
    hang_times: int = 0
    # False: hang, then do the operation. True: do it, then hang before answering (the
    # change happens but the client times out: an ambiguous failure).
    hang_after: bool = False
    match: str | None = None
    seed: int = 0

    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _baseline: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._baseline = self.to_json()
        self._rng = random.Random(self.seed)  # noqa: S311 - reproducible failures, not secrets
        # Validate the constructor's values the same way as set()'s.
        self.set(**self._baseline)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if not f.name.startswith("_"))

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.field_names()}

    def set(self, **changes: Any) -> None:
        """Validate every change, then apply them together. Raises ValueError."""
        cleaned = self._validate(changes)
        with self._lock:
            for name, value in cleaned.items():
                setattr(self, name, value)
            if "match" in cleaned:
                self._pattern = (
                    re.compile(cleaned["match"]) if cleaned["match"] is not None else None
                )
            if "error_rate" in cleaned or "seed" in cleaned:
                self._rng.seed(self.seed)

    def clear(self) -> None:
        self.set(**self._baseline)

    def plan(self, method: str, path: str) -> FaultPlan:
        """Decide, and consume one-shot counters for, the request ``METHOD path``."""
        with self._lock:
            matches = self._pattern is None or self._pattern.search(f"{method} {path}") is not None
            hang = 0.0
            if matches and self.hang_times > 0:
                self.hang_times -= 1
                hang = self.hang_s
            status: int | None = None
            if matches and self.fail_times > 0:
                self.fail_times -= 1
                status = self.fail_status if self.fail_status is not None else self.error_status
            elif self.error_rate > 0 and self._rng.random() < self.error_rate:
                status = self.error_status
            malformed: str | None = None
            if status is None and matches and self.malformed_times > 0:
                self.malformed_times -= 1
                malformed = self.malformed_kind
            return FaultPlan(
                latency_s=self.latency_ms / 1000,
                hang_s=hang,
                hang_after=self.hang_after,
                error_status=status,
                error_body=self.fail_body,
                retry_after=self.retry_after,
                malformed=malformed,
            )

    def _validate(self, changes: dict[str, Any]) -> dict[str, Any]:
        known = self.field_names()
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(
                f"unknown fault field(s): {', '.join(unknown)}; known: {', '.join(known)}"
            )
        cleaned: dict[str, Any] = {}
        for name, value in changes.items():
            if name in {"latency_ms", "fail_times", "malformed_times", "hang_times"}:
                cleaned[name] = _check_count(name, value)
            elif name == "seed":
                if not _is_int(value):
                    raise ValueError(f"seed must be an integer, got {value!r}")
                cleaned[name] = value
            elif name == "hang_after":
                if not isinstance(value, bool):
                    raise ValueError(f"hang_after must be true or false, got {value!r}")
                cleaned[name] = value
            elif name == "hang_s":
                cleaned[name] = _check_seconds(name, value)
            elif name == "error_rate":
                if not _is_number(value) or not 0 <= value <= 1:
                    raise ValueError(f"error_rate must be a number between 0 and 1, got {value!r}")
                cleaned[name] = float(value)
            elif name == "error_status":
                cleaned[name] = _check_status(name, value)
            elif name == "fail_status":
                cleaned[name] = None if value is None else _check_status(name, value)
            elif name == "fail_body":
                if value is not None and not isinstance(value, dict | list | str):
                    raise ValueError(
                        f"fail_body must be an object, a list, a string or null, got {value!r}"
                    )
                cleaned[name] = value
            elif name == "retry_after":
                # Seconds are the common case; accept them as a number for convenience.
                if _is_int(value):
                    value = str(value)
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"retry_after must be a string or null, got {value!r}")
                cleaned[name] = value
            elif name == "malformed_kind":
                if value not in MALFORMED_KINDS:
                    raise ValueError(
                        f"malformed_kind must be one of {', '.join(sorted(MALFORMED_KINDS))}, got {value!r}"
                    )
                cleaned[name] = value
            elif name == "match":
                if value is not None:
                    if not isinstance(value, str):
                        raise ValueError(
                            f"match must be a regular expression string or null, got {value!r}"
                        )
                    try:
                        re.compile(value)
                    except re.error as exc:
                        raise ValueError(
                            f"match is not a valid regular expression: {exc}"
                        ) from None
                cleaned[name] = value
        return cleaned


# ------------------------------------------------------------------------ workspaces


class ModelMissing(LookupError):
    """No model with that id in the workspace (or not one the operation applies to)."""


class BaseModelProtected(PermissionError):
    """A base model cannot be deleted."""


def is_fine_tuned(card: dict[str, Any]) -> bool:
    return card.get("type") == "fine-tuned"


class Workspace:
    """What one API key owns: the base catalogue plus its fine-tuned models."""

    def __init__(self, inventory: seed.Inventory) -> None:
        self.organization_id = inventory.organization_id
        self.organization_hex = inventory.organization_hex
        self.workspace_id = inventory.workspace_id
        self.models: dict[str, dict[str, Any]] = {card["id"]: card for card in inventory.cards}
        self._extras = inventory.extras
        self._live_created = inventory.live_created
        self._lock = threading.RLock()

    # -- raw access (tests and the control endpoint)

    def put(self, card: dict[str, Any]) -> None:
        """Add (at the end) or replace (in place) a raw card, served verbatim from now on."""
        model_id = card.get("id")
        if not isinstance(model_id, str):
            raise ValueError("a card needs a string 'id'")
        with self._lock:
            self.models[model_id] = card
            self._live_created.discard(model_id)

    def get(self, model_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self.models.get(model_id)

    def set_extras(self, model_id: str, extras: seed.FineTuneExtras) -> None:
        with self._lock:
            self._extras[model_id] = extras

    # -- the six operations

    def list_cards(
        self, *, provider: str | None = None, model: str | None = None
    ) -> list[dict[str, Any]]:
        """Cards in workspace order; ``provider`` matches owned_by, ``model`` the id or an alias."""
        with self._lock:
            cards = list(self.models.values())
        if provider:
            cards = [card for card in cards if card.get("owned_by") == provider]
        if model:
            cards = [
                card
                for card in cards
                if card.get("id") == model or model in (card.get("aliases") or ())
            ]
        now = int(time.time())
        return [self._render(card, now) for card in cards]

    def retrieve(self, model_id: str) -> dict[str, Any]:
        card = self.get(model_id)
        if card is None:
            raise ModelMissing(model_id)
        return self._render(card, int(time.time()))

    def delete(self, model_id: str) -> dict[str, Any]:
        with self._lock:
            card = self.models.get(model_id)
            if card is None:
                raise ModelMissing(model_id)
            if not is_fine_tuned(card):
                raise BaseModelProtected(model_id)
            del self.models[model_id]
            self._extras.pop(model_id, None)
        return {"id": model_id, "object": "model", "deleted": True}

    def update(self, model_id: str, changes: dict[str, str | None]) -> dict[str, Any]:
        """Apply already-validated name/description changes; return the update response."""
        with self._lock:
            card = self._fine_tuned(model_id)
            card = {**card, **changes}
            self.models[model_id] = card
            return self._update_response(card)

    def set_archived(self, model_id: str, archived: bool) -> dict[str, Any]:
        with self._lock:
            card = self._fine_tuned(model_id)
            if card.get("archived") is not archived:
                self.models[model_id] = {**card, "archived": archived}
        return {"id": model_id, "object": "model", "archived": archived}

    # -- helpers

    def _fine_tuned(self, model_id: str) -> dict[str, Any]:
        card = self.models.get(model_id)
        # The fine-tuning routes do not know base models at all, hence 404 rather than 403.
        if card is None or not is_fine_tuned(card):
            raise ModelMissing(model_id)
        return card

    def _render(self, card: dict[str, Any], now: int) -> dict[str, Any]:
        # The real API reports the response time as a base model's ``created``.
        if card.get("id") in self._live_created:
            return {**card, "created": now}
        return card

    def _extras_for(self, card: dict[str, Any]) -> seed.FineTuneExtras:
        extras = self._extras.get(card["id"])
        if extras is not None:
            return extras
        capabilities = card.get("capabilities")
        classifier = str(card["id"]).startswith("ft:classifier:") or (
            isinstance(capabilities, dict) and capabilities.get("classification") is True
        )
        root = card.get("root")
        return seed.FineTuneExtras(
            root_version=seed.root_version(root if isinstance(root, str) else ""),
            model_type="classifier" if classifier else "completion",
        )

    def _update_response(self, card: dict[str, Any]) -> dict[str, Any]:
        extras = self._extras_for(card)
        classifier = extras.model_type == "classifier"
        raw_caps = card.get("capabilities")
        caps: dict[str, Any] = raw_caps if isinstance(raw_caps, dict) else {}
        created = card.get("created")
        owned_by = card.get("owned_by")
        root = card.get("root")
        context = card.get("max_context_length")
        aliases = card.get("aliases")
        job = card.get("job")
        response: dict[str, Any] = {
            "id": card["id"],
            "object": "model",
            "created": created if _is_int(created) else 0,
            "owned_by": owned_by if isinstance(owned_by, str) else self.organization_id,
            "workspace_id": self.workspace_id,
            "root": root if isinstance(root, str) else "",
            "root_version": extras.root_version,
            "archived": card.get("archived") is True,
            "name": card.get("name"),
            "description": card.get("description"),
            "capabilities": {
                "completion_chat": bool(caps.get("completion_chat", not classifier)),
                "completion_fim": bool(caps.get("completion_fim", False)),
                "function_calling": bool(caps.get("function_calling", False)),
                "fine_tuning": bool(caps.get("fine_tuning", False)),
                "classification": bool(caps.get("classification", classifier)),
            },
            "max_context_length": context if _is_int(context) else seed.FINE_TUNED_CONTEXT,
            "aliases": aliases if isinstance(aliases, list) else [],
            "job": job if isinstance(job, str) else None,
            "model_type": extras.model_type,
        }
        if classifier:
            response["classifier_targets"] = [dict(target) for target in extras.classifier_targets]
        return response


# ----------------------------------------------------------------------------- state


class SandboxState:
    """All workspaces, the faults and the request log of one sandbox server."""

    def __init__(
        self, *, models: int = 40, latency_ms: int = 0, record_limit: int | None = None
    ) -> None:
        if models < 0:
            raise ValueError("models must be >= 0")
        self.models = models
        self.record_limit = record_limit
        self.faults = Faults(latency_ms=latency_ms)
        self.requests: list[RecordedRequest] = []
        self._workspaces: dict[str, Workspace] = {}
        self.generation = 0  # bumped by reset()
        # /v1 requests being handled now, and the most at once since the last reset:
        # how tests and benchmarks see a client's concurrency.
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        # Set to wake every request sleeping in a latency or hang: replaced on reset(),
        # set for good by close().
        self._wake = threading.Event()
        self._closed = False

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def workspace(self, api_key: str) -> Workspace:
        """The workspace of ``api_key``, created and seeded on first use."""
        # Keyed by fingerprint so no key lingers in memory longer than its request.
        digest = fingerprint(api_key)
        with self._lock:
            workspace = self._workspaces.get(digest)
            if workspace is None:
                workspace = Workspace(seed.inventory(api_key, self.models))
                self._workspaces[digest] = workspace
            return workspace

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            if self.record_limit is not None and len(self.requests) > self.record_limit:
                del self.requests[: len(self.requests) - self.record_limit]
            self._recorded.notify_all()

    def nap(self, seconds: float) -> None:
        """Sleep inside a request (latency, hang); reset() and close() cut it short."""
        with self._lock:
            if self._closed or seconds <= 0:
                return
            wake = self._wake
        wake.wait(seconds)

    def close(self) -> None:
        """Wake every sleeping request, and let none sleep from now on (server stopping)."""
        with self._lock:
            self._closed = True
            self._wake.set()

    def wait_for_requests(self, count: int, *, timeout: float = 10) -> bool:
        """Block until the log holds ``count`` requests (they have arrived, and are being
        handled); False if ``timeout`` passed first. Lets tests act while a request hangs
        without sleeping to win the race."""
        with self._recorded:
            return self._recorded.wait_for(lambda: len(self.requests) >= count, timeout)

    def reset(self) -> None:
        """Forget every workspace (re-seeded on next use), clear faults and the log."""
        with self._lock:
            self._workspaces.clear()
            self.requests.clear()
            # Requests still sleeping in a hang belong to the old state: they are dropped.
            self.generation += 1
            self._wake.set()
            self._wake = threading.Event()
            self.peak_in_flight = self.in_flight
        self.faults.clear()
