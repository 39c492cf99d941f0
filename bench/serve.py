"""6. Throughput through gunicorn: the cached list page against a small signed-in page
of the app (the API key page: session, user, every middleware, a small template), and
the memory of one worker that has served three lists of 10,000 models.

gunicorn runs as in production (``gunicorn dashboard.wsgi --config gunicorn.conf.py``,
two sync workers) on 127.0.0.1, with the benchmark's database, cache and settings, the
2,000-model sandbox behind it, and two changes to its environment, both so that the
list page stays the *cached* list page for the whole run:
MODEL_LIST_CACHE_SECONDS=600 (the inventory does not expire mid-run) and
GUNICORN_MAX_REQUESTS=0 (workers are not recycled mid-run, which would drop a
local-memory cache and pay a worker's start-up inside the measurement).

Without REDIS_URL each worker has its own local-memory cache: a concurrent warm-up
fills both (the sandbox's log says how many list calls that took). With REDIS_URL the
workers share one inventory.

The load comes from threads of this process over plain sockets: each request is one
connection (sync workers close it after answering), the request bytes are prepared
once, and the whole response is read. That costs the client far less CPU than an HTTP
library, which matters on a small machine where client and server share the cores.
Every URL is measured alike: warm-up, then ROUNDS alternating rounds of fixed length;
the ratio is the median of the rounds' ratios, printed with the smallest and largest.
/healthz (answered by the first middleware) and the sign-in page's redirect are kept in
``details`` for reference.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.cache import cache

from bench.common import BenchError, Metric, describe_calls, upstream_calls
from bench.environment import ROOT, SETTINGS_MODULE, Environment

WORKERS = 2
CONCURRENCY = 4  # connections in flight: two per worker, so none waits on the client
WARMUP_S = 1.5
ROUND_S = 2.0
ROUNDS = 3
MAX_REQUESTS_PER_ROUND = 200_000  # a bound on the loop, far above what 2 cores can serve
TARGET = 0.5
TRIVIAL = "/account/api-key/"
HEALTH = "/healthz"
LIST = "/models/"
RSS_MODELS = 10_000
RSS_KEYS = 3
RSS_TARGET_MB = 110
# For reference only: the cheapest request a signed-in user can make (the login page
# redirects them: session, user, the whole middleware stack, no template, no upstream).
FLOOR = "/accounts/login/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    min_bytes: int | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _fetch(port: int, request: bytes) -> tuple[int, int]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        size = 0
        head = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            if len(head) < 16:
                head += data[:16]
            size += len(data)
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, size


def load(
    port: int,
    path: str,
    cookie: str,
    seconds: float,
    concurrency: int = CONCURRENCY,
    expect: int = 200,
) -> LoadResult:
    """As many GETs of ``path`` as ``concurrency`` connections complete in ``seconds``;
    answers other than ``expect`` count as errors."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: sessionid={cookie}\r\n"
        "User-Agent: dashboard-bench\r\nConnection: close\r\n\r\n"
    ).encode()
    result = LoadResult()
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + seconds

    def worker() -> None:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        smallest: int | None = None
        for _ in range(MAX_REQUESTS_PER_ROUND):
            if time.perf_counter() >= deadline:
                break
            sent = time.perf_counter()
            try:
                status, size = _fetch(port, request)
            except OSError:
                status, size = 0, 0
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1
            smallest = size if smallest is None else min(smallest, size)
        with lock:
            result.latencies.extend(latencies)
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count
            if smallest is not None:
                result.min_bytes = (
                    smallest if result.min_bytes is None else min(result.min_bytes, smallest)
                )

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    result.seconds = time.perf_counter() - started
    result.requests = sum(result.statuses.values())
    result.errors = result.requests - result.statuses.get(expect, 0)
    return result


def _merge(results: list[LoadResult]) -> LoadResult:
    merged = LoadResult()
    for r in results:
        merged.requests += r.requests
        merged.errors += r.errors
        merged.seconds += r.seconds
        merged.latencies.extend(r.latencies)
        for status, count in r.statuses.items():
            merged.statuses[status] = merged.statuses.get(status, 0) + count
        if r.min_bytes is not None:
            merged.min_bytes = (
                r.min_bytes if merged.min_bytes is None else min(merged.min_bytes, r.min_bytes)
            )
    return merged


def _p50_ms(result: LoadResult) -> float | None:
    if not result.latencies:
        return None
    ordered = sorted(result.latencies)
    return round(ordered[len(ordered) // 2] * 1000, 2)


class Gunicorn:
    def __init__(
        self, env: Environment, log_path: Path, *, upstream: str = "", workers: int = WORKERS
    ) -> None:
        self.port = _free_port()
        self.log_path = log_path
        self.environ = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DATABASE_URL": env.paths.database_url,
            "DASHBOARD_TEST_MISTRAL_API_URL": upstream or env.large.url,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_MAX_REQUESTS": "0",
            "GUNICORN_LOG_LEVEL": "warning",
            "MODEL_LIST_CACHE_SECONDS": "600",
            "LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "dashboard.wsgi", "--config", "gunicorn.conf.py"],
            cwd=ROOT,
            env=self.environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"gunicorn exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                status, _ = _fetch(
                    self.port,
                    f"GET {HEALTH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
                )
            except OSError:
                status = 0
            if status == 200:
                return self
            time.sleep(0.1)
        raise BenchError(f"gunicorn did not answer {HEALTH} within 30 s: {self.log_tail()}")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: gunicorn's graceful shutdown, workers included
        try:
            self.process.wait(timeout=35)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


def run(env: Environment) -> list[Metric]:
    return [_throughput(env), _memory(env)]


def _throughput(env: Environment) -> Metric:
    # The session lives in the shared database: any worker accepts its cookie.
    client = env.client(env.admin)
    cookie = client.cookies["sessionid"].value
    server = env.large
    # With Redis, the inventory the in-process measurements cached (for 30 s) would be
    # shared with the workers and could expire mid-run: start from an empty cache, so the
    # warm-up caches it with the workers' own lifetime.
    cache.clear()
    paths = (TRIVIAL, LIST, HEALTH, FLOOR)
    expected = {TRIVIAL: 200, LIST: 200, HEALTH: 200, FLOOR: 302}
    with Gunicorn(env, env.paths.tmpdir / "gunicorn.log") as gunicorn:
        port = gunicorn.port
        with upstream_calls(server) as warmup_calls:
            for path in paths:
                warm = load(port, path, cookie, WARMUP_S, expect=expected[path])
                if warm.errors:
                    raise BenchError(
                        f"GET {path} through gunicorn failed: statuses {warm.statuses}; {gunicorn.log_tail()}"
                    )
        rounds: dict[str, list[LoadResult]] = {path: [] for path in paths}
        with upstream_calls(server) as measured_calls:
            for _ in range(ROUNDS):
                for path in paths:
                    rounds[path].append(load(port, path, cookie, ROUND_S, expect=expected[path]))
    merged = {path: _merge(rounds[path]) for path in paths}
    if any(result.errors for result in merged.values()):
        raise BenchError(
            "failed requests: "
            + ", ".join(f"{path} {result.statuses}" for path, result in merged.items())
        )
    listing = merged[LIST]
    if listing.min_bytes is not None and listing.min_bytes < 20_000:
        raise BenchError(
            f"the list page answered only {listing.min_bytes} bytes: not the model list"
        )
    ratios = sorted(
        lst.rps / triv.rps for lst, triv in zip(rounds[LIST], rounds[TRIVIAL], strict=True)
    )
    ratio = ratios[len(ratios) // 2]
    cache_kind = (
        "redis (shared by the workers)"
        if env.paths.redis_url
        else "local memory (one per worker, warmed)"
    )

    def described(path: str) -> dict[str, Any]:
        return {
            "rps": round(merged[path].rps, 1),
            "p50_ms": _p50_ms(merged[path]),
            "requests": merged[path].requests,
            "bytes": merged[path].min_bytes,
        }

    return Metric(
        key="gunicorn.rps_ratio",
        name="gunicorn rps: cached list page / signed-in API key page",
        value=round(ratio, 4),
        unit="x",
        target=f">= {TARGET}",
        met=ratio >= TARGET,
        details={
            "shown": f"{ratio:.3f} ({ratios[0]:.3f}-{ratios[-1]:.3f})",
            "rounds": [round(r, 4) for r in ratios],
            "list": described(LIST),
            "trivial_view": {
                **described(TRIVIAL),
                "path": f"{TRIVIAL} (signed in: session, user, every middleware, a small template)",
            },
            "reference": {
                HEALTH: {**described(HEALTH), "what": "answered by the first middleware"},
                FLOOR: {**described(FLOOR), "what": "302 for a signed-in user, no template"},
                "list_rps / healthz_rps": round(listing.rps / merged[HEALTH].rps, 4),
            },
            "workers": WORKERS,
            "worker_class": "sync",
            "client_connections": CONCURRENCY,
            "seconds_per_url": ROUNDS * ROUND_S,
            "cache": cache_kind,
            "upstream_list_calls_warmup": len(warmup_calls),
            "upstream_calls_measured": describe_calls(measured_calls),
        },
    )


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for process {pid}")


def _memory(env: Environment) -> Metric:
    """One worker, three keys of RSS_MODELS models each: its RSS before and after
    serving each key's list (a miss, then hits), with a sandbox of its own."""
    from bench.environment import _team_admin
    from models_admin.sandbox import SandboxServer

    sandbox = SandboxServer(models=RSS_MODELS).start()
    try:
        cookies = []
        for i in range(RSS_KEYS):
            user = _team_admin(f"bench-rss-{i}", f"sandbox-bench-rss-{i}")
            cookies.append(env.client(user).cookies["sessionid"].value)
        with Gunicorn(
            env, env.paths.tmpdir / "gunicorn-rss.log", upstream=sandbox.url, workers=1
        ) as gunicorn:
            assert gunicorn.process is not None
            workers = _children(gunicorn.process.pid)
            if len(workers) != 1:
                raise BenchError(f"expected one gunicorn worker, found {workers}")
            load(gunicorn.port, TRIVIAL, cookies[0], 0.5, concurrency=1)
            before = _rss_mb(workers[0])
            after_each = []
            for cookie in cookies:
                result = load(gunicorn.port, LIST, cookie, 1.0, concurrency=1)
                if result.errors or not result.requests:
                    raise BenchError(f"the list of {RSS_MODELS} models failed: {result.statuses}")
                after_each.append(round(_rss_mb(workers[0]), 1))
            rss = _rss_mb(workers[0])
    finally:
        sandbox.stop()
    return Metric(
        key="rss.worker",
        name=f"RSS of one gunicorn worker, lists of {RSS_KEYS} keys x {RSS_MODELS:,} models",
        value=round(rss, 1),
        unit="MB",
        target=f"<= {RSS_TARGET_MB}",
        met=rss <= RSS_TARGET_MB,
        details={
            "rss_before_lists_mb": round(before, 1),
            "rss_after_each_key_mb": after_each,
            "growth_mb": round(rss - before, 1),
            "cache": "redis" if env.paths.redis_url else "local memory (in the worker)",
        },
    )
