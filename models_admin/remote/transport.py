"""Transport: the pooled httpx client, the retry policy, the shared rate gate, and
the one request loop every operation goes through.

Retries: 429/500/502/503/504, Cloudflare's 520-524, connection errors and timeouts
are retried with exponential backoff and jitter, ``Retry-After`` honoured, within a
total time budget (see RetryPolicy). All six operations are idempotent in effect
(PATCH sets absolute values, archive/unarchive set a state, DELETE of a gone model
is a 404), so each may be retried; an answer after which the change may have
happened anyway (AMBIGUOUS_STATUSES, a timeout after sending, a dropped connection)
marks the final error ``ambiguous``.

One pooled httpx.Client per process is shared by every client (keep-alive); the
user's key travels on each request's Authorization header and is never logged.

Egress proxy and TLS. The pool honours the standard environment, as curl does:
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` (``http://user:pass@host:port``;
HTTPS goes through a CONNECT tunnel), ``NO_PROXY`` (hosts that go direct), and
``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` (a corporate CA bundle, e.g. for a proxy that
inspects TLS). Loopback hosts (127.0.0.1, localhost, ::1: the sandbox) always go
direct when the proxy comes from the environment. The ``MISTRAL_API_PROXY``
setting (environment variable of the same name), when set, wins: every request
goes through that proxy, whatever the environment says. The pool is rebuilt when
any of these change (and after a fork).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import httpx
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from models_admin.remote.errors import (
    ApiRateLimited,
    ApiTimeout,
    ApiUnavailable,
    ModelsApiError,
)
from models_admin.remote.reading import (
    CLOUDFLARE_STATUSES,
    error_for,
    read_json,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

USER_AGENT: Final = "mistral-models-dashboard/0.1 (+httpx)"
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504}) | CLOUDFLARE_STATUSES
# Answers after which the request may have been carried out anyway. 521-523 say
# Cloudflare could not reach the origin, but nothing proves the origin never saw
# the request, so they count as ambiguous too: the audit never guesses.
AMBIGUOUS_STATUSES: Final = frozenset({500, 502, 504}) | CLOUDFLARE_STATUSES
PROXY_ENVIRONMENT: Final = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
_LOOPBACK_DIRECT: Final[dict[str, httpx.BaseTransport | None]] = {
    "all://127.0.0.1": None,
    "all://localhost": None,
    "all://[::1]": None,
}

_pool_lock = threading.Lock()
_pool: httpx.Client | None = None
_pool_key: tuple[object, ...] | None = None


def _egress() -> tuple[object, ...]:
    """What the pool depends on: the process, the proxy setting and the environment."""
    explicit = settings.MISTRAL_API_PROXY or None
    return (os.getpid(), explicit, *(os.environ.get(name) for name in PROXY_ENVIRONMENT))


def http_pool() -> httpx.Client:
    """The process-wide httpx.Client, re-created after a fork (gunicorn workers) or when
    the proxy configuration changes (see the module docstring)."""
    global _pool, _pool_key
    key = _egress()
    with _pool_lock:
        if _pool is None or _pool_key != key:
            explicit = key[1]
            _pool = httpx.Client(
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                limits=httpx.Limits(
                    max_connections=64, max_keepalive_connections=32, keepalive_expiry=30
                ),
                follow_redirects=False,
                trust_env=True,
                proxy=explicit if isinstance(explicit, str) else None,
                mounts=None if explicit else _LOOPBACK_DIRECT,
            )
            _pool_key = key
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


class RawAnswer(NamedTuple):
    """A 2xx answer for a reader of its own: its status and its body."""

    status_code: int
    content: bytes


def _exchange(
    method: str, url: str, *, body_apart: bool, **kwargs: Any
) -> tuple[httpx.Response, bytes]:
    """One request through the pool and its whole answer, read as ``Client.request``
    reads it (errors while reading the body included). With ``body_apart`` a 2xx body
    is returned without being kept on the response: an httpx Response and its stream
    refer to each other, so a response lives until the garbage collector runs, and a
    list body (8 MB at 10,000 models) kept on it would outlive the request, too late
    for memory.release_after to hand it back."""
    pool = http_pool()
    response = pool.send(pool.build_request(method, url, **kwargs), stream=True)
    try:
        if body_apart and response.is_success:
            return response, b"".join(response.iter_bytes())
        return response, response.read()
    finally:
        response.close()


class Transport:
    """Authenticated requests with retries to one base URL, for one API key."""

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
        return f"<{type(self).__name__} {self.base_url}>"

    # Hides every local (httpx's frames below hold the Authorization header) from error reports.
    @sensitive_variables()
    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        raw: bool = False,
    ) -> Any:
        """One call with retries. Returns the decoded JSON body of a 2xx answer (with
        ``raw``, a RawAnswer: its status and body, for a reader of its own); raises a ModelsApiError whose ``ambiguous`` says whether any attempt may have
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
                response, body = _exchange(
                    method,
                    url,
                    params=params,
                    json=json if method in {"PATCH", "POST", "PUT"} and json is not None else None,
                    headers=self._auth,
                    timeout=self.timeout,
                    body_apart=raw,
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
                    if raw:
                        return RawAnswer(response.status_code, body)
                    return read_json(response, what=f"{method} {path}")
                error = error_for(response)
                cause = error
                ambiguous = ambiguous or response.status_code in AMBIGUOUS_STATUSES
                if response.status_code not in RETRY_STATUSES:
                    error.ambiguous = ambiguous
                    raise error
                retry_after = retry_after_seconds(response)

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
