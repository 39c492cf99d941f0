"""Soak under real-world faults (issue 11): about 1,000 mixed requests on gunicorn with
4 workers, PostgreSQL and a private Redis, the sandbox injecting upstream faults, one
gunicorn worker SIGKILLed mid-run and a 30 s Redis outage. Then ``reconcile_audit``,
and every change attempt's final verdict is checked against the sandbox's final state.

    python -m bench.soak        # DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/faults2

The database named by DATABASE_URL is DROPPED and created again: give it a throwaway
one. Redis is a private ``redis-server`` on a free port (never the shared one). Bounded:
TOTAL requests (more if the Redis outage outlasts them: 100 follow its end), or
DEADLINE_S seconds. Not part of
``make test``; it prints its figures as JSON and exits 1 when a target is missed.

Targets: 0 responses 500, 0 verdicts that the sandbox contradicts.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
TOTAL = 1000
DEADLINE_S = 600.0
CLIENTS = 6
OUTAGE_S = 30.0
KEYS = (
    "sandbox-alice-workspace-7f3a9c21",
    "sandbox-bob-workspace-19d4e6b8",
    "sandbox-carol-workspace-5b2e8f04",
)
# When the run has made this many requests, the next fault starts.
TIMELINE = (
    (100, "upstream 502s (10 % of calls)"),
    (250, "lost answers (changes happen, answers time out)"),
    (280, "SIGKILL a gunicorn worker mid-change"),
    (350, "gateway timeouts (504) on changes"),
    (450, "Redis stopped for 30 s"),
)
MODEL_ID = re.compile(r"^ft:")


def _reset_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    count: int = 0
    limit: int = TOTAL  # raised while Redis is down, so that requests follow its return
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> int | None:
        with self.lock:
            if self.count >= self.limit:
                return None
            self.count += 1
            return self.count

    def record(self, op: str, status: int | str) -> None:
        with self.lock:
            self.statuses[f"{op} {status}"] += 1


class Dashboard:
    """One browser: a signed-in httpx client with its CSRF token."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30, follow_redirects=False)

    def sign_in(self, username: str, password: str) -> int:
        page = self.http.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        response = self.http.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": token.group(1) if token else "",
            },
        )
        return response.status_code

    def post(self, url: str, data: dict[str, str] | None = None) -> httpx.Response:
        headers = {"HX-Request": "true", "X-CSRFToken": self.http.cookies.get("csrftoken", "")}
        return self.http.post(url, data=data or {}, headers=headers)


def _worker(
    n: int, base: str, username: str, key: str, models: list[str], tally: Tally, sandbox: Any
) -> None:
    from django.urls import reverse

    rng = random.Random(n)  # noqa: S311 - a reproducible mix, not secrets
    me = Dashboard(base)
    me.sign_in(username, f"{username}-password")
    deletes = 0
    workspace = sandbox.state.workspace(key)
    while (i := tally.next()) is not None:
        op = rng.choices(
            ["list", "detail", "toggle", "edit", "delete", "signin", "readyz"],
            weights=[35, 10, 25, 12, 3, 10, 5],
        )[0]
        alive = [m for m in models if m in workspace.models]
        model = rng.choice(alive) if alive else None
        try:
            if op == "list" or model is None:
                op = "list"
                status = me.http.get(
                    "/models/", params={"q": rng.choice(["", "v", "2024"])}
                ).status_code
            elif op == "detail":
                status = me.http.get(reverse("models_admin:model_detail", args=[model])).status_code
            elif op == "toggle":
                archived = workspace.models.get(model, {}).get("archived", False)
                name = "model_row_unarchive" if archived else "model_row_archive"
                status = me.post(reverse(f"models_admin:{name}", args=[model])).status_code
            elif op == "edit":
                card = workspace.models.get(model, {})
                expected = {"name": card.get("name"), "description": card.get("description")}
                data = {
                    "name": card.get("name") or "",
                    "description": f"soak edit {i}",
                    "expected": json.dumps(expected),
                }
                status = me.post(reverse("models_admin:model_edit", args=[model]), data).status_code
            elif op == "delete" and deletes < 3:
                deletes += 1
                url = reverse("models_admin:model_row_delete", args=[model])
                status = me.post(url, {"confirm_id": model, "reason": f"soak {i}"}).status_code
            elif op in ("signin", "delete"):
                op = "signin"
                wrong = rng.random() < 0.2
                who = "soak-wrong" if wrong else "soak-signin"
                status = Dashboard(base).sign_in(who, "nope" if wrong else f"{who}-password")
            else:
                status = me.http.get("/readyz").status_code
        except httpx.TransportError as exc:
            tally.record(op, type(exc).__name__)
            tally.errors[type(exc).__name__] += 1
            continue
        tally.record(op, status)


def _workers_of(master: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in out.stdout.split()]


def _worker_mid_change(sandbox: Any, master: int, seen: int) -> int | None:
    """The gunicorn worker whose change request (after the ``seen`` first recorded
    requests) the sandbox is holding: found by the request's source port."""
    workers = set(_workers_of(master))
    for request in list(sandbox.state.requests)[seen:]:
        if request.method not in ("POST", "PATCH", "DELETE"):
            continue
        port = request.peer.rsplit(":", 1)[1]
        out = subprocess.run(
            ["ss", "-tnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
        )
        for pid in re.findall(r"pid=(\d+)", out.stdout):
            if int(pid) in workers:
                return int(pid)
    return None


def _kill_mid_change(sandbox: Any, faults: str, master: int, log: list[str]) -> None:
    """Hold every change for 3 s (done, then no answer: the client's retries are held
    too) and SIGKILL a worker waiting for one: its attempt is left without an outcome,
    for reconcile_audit."""
    httpx.post(
        faults,
        json={"hang_s": 3, "hang_times": 100, "hang_after": True, "match": "PATCH|POST|DELETE"},
    )
    time.sleep(0.3)  # changes sent before the hold have been answered by now
    seen = len(sandbox.state.requests)
    for _ in range(200):
        victim = _worker_mid_change(sandbox, master, seen)
        if victim is not None:
            os.kill(victim, signal.SIGKILL)
            httpx.delete(faults)
            log.append(f"killed worker {victim} while it waited for a change's answer")
            return
        time.sleep(0.05)
    victim = _workers_of(master)[0]
    os.kill(victim, signal.SIGKILL)
    log.append(f"killed worker {victim} (no change was in flight)")


def _timeline(
    tally: Tally, sandbox: Any, gunicorn: subprocess.Popen[bytes], redis: Any, log: list[str]
) -> None:
    faults = f"{sandbox.url}/_sandbox/faults"
    started = time.monotonic()
    for at, what in TIMELINE:
        while tally.count < at and tally.count < tally.limit:
            if time.monotonic() - started > DEADLINE_S:
                return
            time.sleep(0.05)
        if tally.count >= tally.limit:
            return
        log.append(f"at request {tally.count}: {what}")
        httpx.delete(faults)
        if at == 100:
            httpx.post(faults, json={"error_rate": 0.1, "error_status": 502, "seed": 1})
        elif at == 250:
            changes = "PATCH|POST|DELETE"
            httpx.post(
                faults,
                json={"hang_s": 0.7, "hang_times": 25, "hang_after": True, "match": changes},
            )
        elif at == 280:
            _kill_mid_change(sandbox, faults, gunicorn.pid, log)
        elif at == 350:
            httpx.post(
                faults, json={"fail_status": 504, "fail_times": 30, "match": "POST|DELETE|PATCH"}
            )
        elif at == 450:
            tally.limit = 10 * TOTAL  # the outage lasts OUTAGE_S, however many requests
            redis.stop()
            time.sleep(OUTAGE_S)
            redis.start()
            tally.limit = max(TOTAL, tally.count + 100)
            log.append(f"Redis back at request {tally.count}")


def _replay(initial: dict[str, dict[str, Any]], sandbox: Any) -> dict[str, Any]:
    """Every model's state from its initial card and the changes the log says succeeded,
    against the sandbox's final state."""
    from models_admin import audit
    from models_admin.models import AuditEntry
    from models_admin.reconcile import UPSTREAM_ACTIONS

    Action, Outcome = AuditEntry.Action, AuditEntry.Outcome
    attempts = audit.with_resolution(
        AuditEntry.objects.filter(kind=AuditEntry.Kind.ATTEMPT, action__in=UPSTREAM_ACTIONS)
    ).order_by("seq")
    verdicts: Counter[str] = Counter()
    state = {mid: dict(card) for mid, card in initial.items()}
    uncertain: set[str] = set()
    for attempt in attempts:
        outcome = attempt.effective_outcome  # type: ignore[attr-defined]
        verdicts[outcome] += 1
        mid = attempt.target_id
        if outcome in (Outcome.UNKNOWN, Outcome.UNDETERMINED):
            uncertain.add(mid)
        if outcome != Outcome.SUCCEEDED or mid not in state:
            continue
        if attempt.action == Action.MODEL_DELETE:
            state[mid]["gone"] = True
        elif attempt.action in (Action.MODEL_ARCHIVE, Action.MODEL_UNARCHIVE):
            state[mid]["archived"] = attempt.action == Action.MODEL_ARCHIVE
        else:
            for name, (_, new) in (attempt.changes or {}).items():
                state[mid][name] = new
    final = {}
    for key in KEYS:
        final.update(sandbox.state.workspace(key).models)
    disagreements = []
    for mid, expected in state.items():
        if mid in uncertain:
            continue
        card = final.get(mid)
        seen = (
            {"gone": True}
            if card is None
            else {k: card.get(k) for k in ("archived", "name", "description")} | {"gone": False}
        )
        wanted = {k: expected.get(k) for k in ("archived", "name", "description")}
        wanted = {"gone": True} if expected.get("gone") else wanted | {"gone": False}
        if seen != wanted:
            disagreements.append({"model": mid, "log_says": wanted, "sandbox_has": seen})
    return {
        "attempts_by_final_verdict": dict(verdicts),
        "models_checked": len(state) - len(uncertain & set(state)),
        "models_left_undetermined_or_unknown": len(uncertain & set(state)),
        "disagreements": disagreements,
    }


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from models_admin.sandbox import SandboxServer
    from tests.servers import RedisServer, free_port

    database = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/faults2")
    _reset_database(database)
    redis = RedisServer()
    redis.start()
    sandbox = SandboxServer(models=24, latency_ms=5).start()
    logdir = Path(tempfile.mkdtemp(prefix="soak-"))
    gunicorn: subprocess.Popen[bytes] | None = None
    try:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            REDIS_URL=redis.url,
            DASHBOARD_TEST_MISTRAL_API_URL=sandbox.url,
            LOG_LEVEL="WARNING",
        )
        import django

        django.setup()
        from django.core.management import call_command

        from models_admin import roles
        from tests.conftest import make_user

        call_command("migrate", verbosity=0)
        users = []
        for n, key in enumerate(KEYS):
            users.append((make_user(f"soak-admin-{n}", roles.Role.TEAM_ADMIN, key).username, key))
        make_user("soak-signin", roles.Role.MEMBER)
        make_user("soak-wrong", roles.Role.MEMBER)
        initial: dict[str, dict[str, Any]] = {}
        for key in KEYS:
            for mid, card in sandbox.state.workspace(key).models.items():
                if card.get("type") == "fine-tuned":
                    initial[mid] = {k: card.get(k) for k in ("archived", "name", "description")}

        port = free_port()
        env = dict(
            os.environ, WEB_CONCURRENCY="4", GUNICORN_MAX_REQUESTS="0", GUNICORN_TIMEOUT="30"
        )
        out = (logdir / "gunicorn.log").open("wb")
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "dashboard.wsgi", "--config", "gunicorn.conf.py"]
            + ["--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)

        tally, log = Tally(), list[str]()
        started = time.monotonic()
        threads = []
        for n in range(CLIENTS):
            username, key = users[n % len(users)]
            mine = sorted(initial)[n::CLIENTS]
            mine = [m for m in mine if m in sandbox.state.workspace(key).models]
            threads.append(
                threading.Thread(
                    target=_worker, args=(n, base, username, key, mine, tally, sandbox)
                )
            )
        control = threading.Thread(target=_timeline, args=(tally, sandbox, gunicorn, redis, log))
        for thread in [*threads, control]:
            thread.start()
        for thread in [*threads, control]:
            thread.join(timeout=DEADLINE_S)
        seconds = time.monotonic() - started
        httpx.delete(f"{sandbox.url}/_sandbox/faults")

        from io import StringIO

        reconciled = StringIO()
        call_command("reconcile_audit", "--min-age", "0", stdout=reconciled)
        checked = _replay(initial, sandbox)
        five_hundreds = sum(v for k, v in tally.statuses.items() if k.endswith(" 500"))
        report = {
            "requests": tally.count,
            "seconds": round(seconds, 1),
            "responses_500": five_hundreds,
            "transport_errors": dict(tally.errors),
            "by_op_and_status": dict(sorted(tally.statuses.items())),
            "timeline": log,
            "reconcile": reconciled.getvalue().strip().splitlines()[-1:],
            **checked,
        }
        print(json.dumps(report, indent=2))
        return 0 if five_hundreds == 0 and not checked["disagreements"] else 1
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
        redis.stop()
        sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
