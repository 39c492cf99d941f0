"""2 and 5. The audit page at 1,000 and 100,000 entries, and a streamed CSV export of 100,000.

Writing 100,000 entries through ``audit.append`` (one locked transaction each) would
take minutes, so ``History`` writes them in bulk (a multi-row INSERT, COPY on
PostgreSQL), in ``seq`` order, each hashed as ``audit.append`` hashes it
(``audit_hash.entry_hash`` over the fields ``audit_hash.hash_values`` picks, the attempt as its
seq) and chained to the one before; then it moves the chain head. The chain verifies
(``audit_chain.verify_chain()`` is checked at 1,000 entries), and the app appends after it
as usual. The history is a realistic mix spread over the past year: changes as an
attempt followed by its outcome (1 % never resolved), and events (key changes, member
changes, exports, denials).

This runs first, on the empty log, so the history is older than what the other
measurements record, and they all run against a 100,000-entry log.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Max

from bench.common import (
    AUDIT_LARGE,
    AUDIT_SMALL,
    BenchError,
    Metric,
    expect_status,
    p50,
    summary_ms,
    timed,
)
from bench.environment import Environment
from bench.queries import count_queries, equal_counts_metric
from models_admin import audit_chain, audit_hash
from models_admin.audit import Action, Kind, Outcome
from models_admin.models import AuditChainHead, AuditEntry

PAGE_WARMUP = 3
PAGE_SAMPLES = 30
RATIO_TARGET = 1.5
EXPORT_TARGET_MB = 30.0
BATCH = 2_000

CHANGE_ACTIONS = (
    (Action.MODEL_UPDATE, 0.45),
    (Action.MODEL_ARCHIVE, 0.3),
    (Action.MODEL_UNARCHIVE, 0.1),
    (Action.MODEL_DELETE, 0.15),
)
EVENT_ACTIONS = (
    Action.API_KEY_ADD,
    Action.API_KEY_REPLACE,
    Action.MEMBER_ADD,
    Action.MEMBER_ROLE,
    Action.MEMBER_PASSWORD_LINK,
    Action.AUDIT_EXPORT,
)
ROOTS = ("open-mistral-7b", "mistral-small-latest", "codestral-latest", "ministral-8b-latest")
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


class History:
    """A generator of valid audit entries, continuing the chain where it stands."""

    def __init__(self, *, planned: int, actors: list[Any]) -> None:
        self.rng = random.Random(20261125)  # the same history every run
        head = AuditChainHead.objects.filter(pk=1).first()
        self.seq = head.seq if head else 0
        self.prev_hash = head.hash if head else audit_hash.GENESIS
        self.pk_offset = (AuditEntry.objects.aggregate(m=Max("id"))["m"] or 0) - self.seq
        now = datetime.now(UTC).replace(microsecond=0)
        self.step = timedelta(days=365) / planned
        self.start = now - timedelta(hours=1) - self.step * planned
        # (user or None, username, role): three real users, and former members (no link).
        self.actors = [(u, u.username, "team_admin") for u in actors] + [
            (None, f"member{i}", "member") for i in range(8)
        ]
        self.models = [self._card(i) for i in range(600)]
        # The attempt whose outcome comes next: pk, seq, card, action.
        self.pending: tuple[int, int, dict[str, Any], str] | None = None
        # Every column, and whether its value needs the field's preparation for the database.
        self.fields = [
            (f, f.get_internal_type() in {"DateTimeField", "JSONField", "GenericIPAddressField"})
            for f in AuditEntry._meta.concrete_fields
        ]
        # What the model would fill in (entries share the empty dicts: none is mutated).
        self.defaults = {f.attname: f.get_default() for f, _ in self.fields}
        quote = connection.ops.quote_name
        table = quote(AuditEntry._meta.db_table)
        columns = ", ".join(quote(f.column) for f, _ in self.fields)
        placeholders = ", ".join(["%s"] * len(self.fields))
        # Quoted identifiers from the model, no outside input.
        self.insert_sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608
        self.copy_sql = f"COPY {table} ({columns}) FROM STDIN"

    def _card(self, i: int) -> dict[str, Any]:
        rng = self.rng
        root = rng.choice(ROOTS)
        created = datetime(2024, 3, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(900_000))
        job = f"{rng.getrandbits(32):08x}"
        model_id = f"ft:{root}:b6e34a5e:{created:%Y%m%d}:{job}"
        return {
            "id": model_id,
            "object": "model",
            "created": int(created.timestamp()),
            "owned_by": "b6e34a5e-8a0c-4b6e-9f1e-3c1d2a4b5c6d",
            "name": f"support-bot-{i}" if i % 3 else None,
            "description": f"Fine-tune {i} of {root} on the support tickets" if i % 2 else None,
            "capabilities": {
                "completion_chat": True,
                "function_calling": bool(i % 2),
                "fine_tuning": False,
            },
            "max_context_length": 32768,
            "aliases": [],
            "deprecation": None,
            "deprecation_replacement_model": None,
            "default_model_temperature": None,
            "type": "fine-tuned",
            "root": root,
            "archived": bool(i % 5 == 0),
            "job": f"{job}-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        }

    def extend_to(self, total: int) -> None:
        """Append entries until the log has ``total``, then move the chain head."""
        batch: list[dict[str, Any]] = []
        while self.seq < total:
            batch.append(self._next())
            if len(batch) == BATCH:
                self._write(batch)
                batch = []
        if batch:
            self._write(batch)
        AuditChainHead.objects.update_or_create(
            pk=1, defaults={"seq": self.seq, "hash": self.prev_hash}
        )
        # Explicit ids do not move PostgreSQL's identity sequence: move it, or the app's
        # next append would collide. (SQLite's AUTOINCREMENT follows by itself.)
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [AuditEntry]):
                cursor.execute(sql)
            if connection.vendor == "postgresql":
                # As autovacuum would soon after such growth: the planner sees the table's
                # size, and the visibility map is set (so that an autovacuum starting in
                # the middle of the timings does not make them noisy).
                cursor.execute(f"VACUUM ANALYZE {AuditEntry._meta.db_table}")

    def _write(self, batch: list[dict[str, Any]]) -> None:
        """One multi-row INSERT per batch: the ORM's bulk_create spends most of its time
        preparing values field by field; only the fields that need it are prepared here."""
        rows = [
            [
                field.get_db_prep_save(values[field.attname], connection)
                if prep
                else values[field.attname]
                for field, prep in self.fields
            ]
            for values in batch
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(self.copy_sql) as copy:  # psycopg 3's COPY FROM STDIN
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(self.insert_sql, rows)

    def _next(self) -> dict[str, Any]:
        """The next entry, as {attname: value} for every column."""
        rng = self.rng
        self.seq += 1
        user, username, role = rng.choice(self.actors)
        fields: dict[str, Any] = {
            "actor_id": user.pk if user else None,
            "actor_username": username,
            "actor_email": f"{username}@example.com",
            "actor_role": role,
            "ip": f"10.0.{rng.randrange(4)}.{rng.randrange(1, 255)}",
            "user_agent": USER_AGENT,
            "request_id": f"{rng.getrandbits(128):032x}",
        }
        attempt_seq: int | None = None
        if self.pending is not None:
            # The outcome of the previous entry, an attempt.
            attempt_pk, attempt_seq, card, action = self.pending
            self.pending = None
            roll = rng.random()
            outcome = Outcome.SUCCEEDED if roll < 0.9 else Outcome.FAILED
            fields.update(
                kind=Kind.OUTCOME,
                attempt_id=attempt_pk,
                action=action,
                target_id=card["id"],
                target_name=card["name"] or card["id"],
                before=card,
                outcome=outcome,
                upstream_status=None
                if outcome == Outcome.SUCCEEDED
                else rng.choice((404, 503, 422)),
                message="" if outcome == Outcome.SUCCEEDED else "Mistral is unavailable right now.",
                upstream_request_id=f"{rng.getrandbits(64):016x}",
                changes=(
                    {"archived": [card["archived"], not card["archived"]]}
                    if action in (Action.MODEL_ARCHIVE, Action.MODEL_UNARCHIVE)
                    and outcome == Outcome.SUCCEEDED
                    else {}
                ),
            )
        elif rng.random() < 0.7:
            action = rng.choices([a for a, _ in CHANGE_ACTIONS], [w for _, w in CHANGE_ACTIONS])[0]
            card = rng.choice(self.models)
            fields.update(
                kind=Kind.ATTEMPT,
                action=action,
                target_id=card["id"],
                target_name=card["name"] or card["id"],
                before=card,
                outcome=Outcome.UNKNOWN,
                reason="Superseded by the next fine-tune." if action == Action.MODEL_DELETE else "",
                changes=(
                    {"name": [card["name"], f"{card['name'] or 'model'}-v{rng.randrange(2, 9)}"]}
                    if action == Action.MODEL_UPDATE
                    else {}
                ),
                credential_id=rng.randrange(1, 12),
                credential_masked="sand…b3c1",
            )
            if rng.random() >= 0.01:  # 1 % are never resolved (read as unknown)
                self.pending = (self.seq + self.pk_offset, self.seq, card, action)
        else:
            action = rng.choice(EVENT_ACTIONS)
            denied = rng.random() < 0.05
            fields.update(
                kind=Kind.EVENT,
                action=action,
                target_id=f"member{rng.randrange(8)}" if action.startswith("member") else "",
                outcome=Outcome.DENIED if denied else Outcome.SUCCEEDED,
                message="The actor's role does not allow this." if denied else "",
                details={"format": "csv", "filters": {}} if action == Action.AUDIT_EXPORT else {},
            )
        values: dict[str, Any] = {
            **self.defaults,
            "id": self.seq + self.pk_offset,
            "seq": self.seq,
            "created_at": self.start + self.step * self.seq,
            "prev_hash": self.prev_hash,
            **fields,
        }
        # Hashed as audit.append hashes an entry: audit_hash.hash_values' fields, with the
        # attempt as its seq. (hash_values also round-trips the JSON fields through JSON
        # so that they hash as they read back; these are plain JSON already.)
        values["hash"] = audit_hash.entry_hash({**values, "attempt_seq": attempt_seq})
        self.prev_hash = values["hash"]
        return values


def _status_kb(name: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM (the peak resident set) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _page_timings(client: Any) -> list[float]:
    for _ in range(PAGE_WARMUP):
        response = expect_status(client.get("/audit/"), 200)
    if response.content.count(b'href="/audit/') < 50:
        raise BenchError("the audit page does not show 50 entries")
    return [
        timed(lambda: expect_status(client.get("/audit/"), 200))[0] for _ in range(PAGE_SAMPLES)
    ]


def _deep_page_p50(client: Any, before: int) -> float:
    url = f"/audit/?before={before}"
    expect_status(client.get(url), 200)
    return p50([timed(lambda: client.get(url))[0] for _ in range(10)])


def _release_free_memory() -> None:
    """Collect garbage and hand free heap memory back to the OS (glibc), so that RSS
    growth afterwards is new memory rather than reuse of what earlier steps freed."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _consume_export(client: Any) -> dict[str, Any]:
    response = expect_status(client.get("/audit/export.csv"), 200)
    if not response.streaming:
        raise BenchError("the CSV export is not a streaming response")
    size = lines = chunks = 0
    for chunk in response.streaming_content:
        chunks += 1
        size += len(chunk)
        lines += chunk.count(b"\n")
    response.close()
    return {"bytes": size, "lines": lines, "chunks": chunks}


def _export(client: Any) -> dict[str, Any]:
    """Stream the CSV export of the whole log twice while measuring memory: once for the
    process's peak RSS (VmHWM, reset first; this run is also timed), once under
    tracemalloc (every Python allocation, about 4x slower)."""
    _release_free_memory()
    rss_before = _status_kb("VmRSS")
    hwm_reset = _reset_peak_rss()
    seconds, counts = timed(lambda: _consume_export(client))
    hwm_after = _status_kb("VmHWM")
    rss_growth = (
        round((hwm_after - rss_before) / 1024, 2)
        if hwm_reset and hwm_after is not None and rss_before is not None
        else None
    )
    _release_free_memory()
    tracemalloc.start()
    traced_s, _ = timed(lambda: _consume_export(client))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    traced_mb = round(peak / 2**20, 2)
    return {
        "peak_growth_mb": max(traced_mb, rss_growth or 0.0),
        "tracemalloc_peak_mb": traced_mb,
        "rss_peak_growth_mb": rss_growth,
        "seconds": round(seconds, 2),
        "rows_per_second": round(counts["lines"] / seconds) if seconds else None,
        "seconds_under_tracemalloc": round(traced_s, 2),
        **counts,
    }


def run(env: Environment) -> list[Metric]:
    client = env.client(env.admin)
    history = History(planned=AUDIT_LARGE, actors=[env.admin, env.small_user, env.bulk_user])

    generated_s, _ = timed(lambda: history.extend_to(AUDIT_SMALL))
    report = audit_chain.verify_chain()
    if not report.ok:
        raise BenchError(f"the generated audit chain does not verify: {report.problem}")
    small_times = _page_timings(client)
    small_queries = count_queries(lambda: client.get("/audit/"))
    small_deep = _deep_page_p50(client, AUDIT_SMALL // 2)

    generated_s += timed(lambda: history.extend_to(AUDIT_LARGE))[0]
    large_times = _page_timings(client)
    large_queries = count_queries(lambda: client.get("/audit/"))
    large_deep = _deep_page_p50(client, AUDIT_LARGE // 2)
    exported_entries = AuditEntry.objects.exclude(kind=Kind.OUTCOME).count()
    export = _export(client)

    ratio = p50(large_times) / p50(small_times)
    peak_mb = export["peak_growth_mb"]
    return [
        equal_counts_metric(
            "db_queries.audit",
            f"db queries: audit page ({AUDIT_SMALL:,} -> {AUDIT_LARGE:,} entries)",
            (f"{AUDIT_SMALL}_entries", f"{AUDIT_LARGE}_entries"),
            small_queries,
            large_queries,
        ),
        Metric(
            key="audit.page_ratio",
            name=f"audit page p50 at {AUDIT_LARGE:,} / at {AUDIT_SMALL:,} entries",
            value=round(ratio, 3),
            unit="x",
            target=f"<= {RATIO_TARGET}",
            met=ratio <= RATIO_TARGET,
            details={
                f"page_at_{AUDIT_SMALL}": summary_ms(small_times),
                f"page_at_{AUDIT_LARGE}": summary_ms(large_times),
                f"middle_page_p50_ms_at_{AUDIT_SMALL}": round(small_deep * 1000, 2),
                f"middle_page_p50_ms_at_{AUDIT_LARGE}": round(large_deep * 1000, 2),
                "chain_verified_at": report.checked,
                "generation_seconds": round(generated_s, 1),
            },
        ),
        Metric(
            key="audit.export_memory",
            name=f"CSV export of {AUDIT_LARGE:,} entries: peak memory growth",
            value=peak_mb,
            unit="MB",
            target=f"<= {EXPORT_TARGET_MB:.0f}",
            met=peak_mb <= EXPORT_TARGET_MB,
            details={**export, "log_entries": AUDIT_LARGE, "rows_exported": exported_entries},
        ),
    ]
