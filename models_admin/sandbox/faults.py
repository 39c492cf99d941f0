"""Injectable faults: what goes wrong with the next ``/v1/`` requests, and how.

``Faults`` guards its fields and one-shot counters with a lock: ``plan`` reads and
decrements a counter in one step, so concurrent requests never share one failure.
The order in which a request meets them is in ``api``.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Final

MALFORMED_KINDS: Final = frozenset({"truncated", "html", "wrong_shape"})


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
    drop_fields: tuple[str, ...] = ()


class RateLimiter:
    """A token bucket per key: ``rate`` requests per second, bursts of up to
    ``max(1, rate)``. Driven by an injectable clock, so tests decide by counts."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def admit(self, key: str) -> tuple[bool, dict[str, str]]:
        """Whether a request of ``key`` may pass now (taking a token), and the
        ``x-ratelimit-*`` headers (plus ``Retry-After`` and ``retry-after-ms`` when not)."""
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + max(0.0, now - at) * self.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[key] = (tokens, now)
        headers = {
            "x-ratelimit-limit-req-second": f"{self.rate:g}",
            "x-ratelimit-remaining-req-second": str(math.floor(tokens)),
        }
        if not allowed:
            wait = (1 - tokens) / self.rate
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        return allowed, headers


def is_int(value: object) -> bool:
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
    """Failures injected into ``/v1/`` requests; see ``api`` for the order.

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
    # Requests per second per key (token bucket, see RateLimiter); 0 = no limit. Over
    # it, a request is answered 429 on arrival, before any other fault.
    rate_limit: float = 0.0
    # Fields left out of every successful answer (of each card, in a list) to requests
    # that match ``match``; the operation itself happens. Shows a 2xx that breaks the
    # contract after the change was made (e.g. ["workspace_id"] or ["archived"] on PATCH).
    drop_fields: list[str] = field(default_factory=list)

    # The rate limiter's clock: tests replace it to count instead of waiting.
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    _limiter: RateLimiter | None = field(default=None, init=False, repr=False, compare=False)
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
        return tuple(
            f.name for f in fields(cls) if not f.name.startswith("_") and f.name != "clock"
        )

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
            if "rate_limit" in cleaned:
                # Always a fresh bucket: setting the limit (again) starts every key full.
                self._limiter = (
                    RateLimiter(self.rate_limit, lambda: self.clock()) if self.rate_limit else None
                )

    def clear(self) -> None:
        self.set(**self._baseline)

    def admit(self, key: str) -> tuple[bool, dict[str, str]] | None:
        """The rate limiter's verdict for a request of ``key`` (None: no limit set)."""
        with self._lock:
            return None if self._limiter is None else self._limiter.admit(key)

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
                drop_fields=tuple(self.drop_fields) if matches else (),
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
                if not is_int(value):
                    raise ValueError(f"seed must be an integer, got {value!r}")
                cleaned[name] = value
            elif name == "hang_after":
                if not isinstance(value, bool):
                    raise ValueError(f"hang_after must be true or false, got {value!r}")
                cleaned[name] = value
            elif name in {"hang_s", "rate_limit"}:
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
                if is_int(value):
                    value = str(value)
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"retry_after must be a string or null, got {value!r}")
                cleaned[name] = value
            elif name == "drop_fields":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"drop_fields must be a list of field names, got {value!r}")
                cleaned[name] = list(value)
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
