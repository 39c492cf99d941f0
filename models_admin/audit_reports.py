"""Reading the audit log: filtering, keyset pages, deleted models, streamed exports.

Every page is a keyset page on ``seq`` (``seq < before`` newest first, or
``seq > after``), so page 2,000 costs what page 1 costs; attempts carry their latest
outcome (audit.with_resolution), fetched for a whole page or export chunk at once.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from models_admin import audit
from models_admin.models import AuditEntry

PAGE_SIZE = 50
EXPORT_CHUNK = 500

CSV_COLUMNS = (
    "seq",
    "time_utc",
    "kind",
    "action",
    "outcome",
    "actor",
    "actor_email",
    "actor_role",
    "target_id",
    "target_name",
    "reason",
    "changes",
    "upstream_status",
    "message",
    "upstream_request_id",
    "resolved_by_seq",
    "resolved_at_utc",
    "ip",
    "user_agent",
    "request_id",
    "credential_id",
    "credential_masked",
    "before",
    "prev_hash",
    "hash",
)


def search(filters: dict[str, Any]) -> QuerySet[AuditEntry]:
    """Attempts and events (outcomes are shown with their attempt) matching the filters,
    annotated with their effective outcome."""
    entries: QuerySet[AuditEntry] = AuditEntry.objects.exclude(kind=AuditEntry.Kind.OUTCOME)
    if actor := filters.get("actor"):
        entries = entries.filter(actor_username=actor)
    if action := filters.get("action"):
        entries = entries.filter(action=action)
    if target := filters.get("target"):
        entries = entries.filter(target_id=target)
    if (source := filters.get("source")) == "outside":
        entries = entries.filter(kind=AuditEntry.Kind.OUTSIDE)
    elif source == "dashboard":
        entries = entries.exclude(kind=AuditEntry.Kind.OUTSIDE)
    if q := filters.get("q"):
        # By id or by name: the attempt's, or the one its outcome carries (a rename's new
        # name, or the name read fresh when the attempt knew none).
        named = AuditEntry.objects.filter(attempt=OuterRef("pk"), target_name__icontains=q)
        entries = entries.filter(
            Q(target_id__icontains=q) | Q(target_name__icontains=q) | Exists(named)
        )
    if since := filters.get("since"):
        entries = entries.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=UTC))
    # The last day a date can name bounds nothing (and has no day after it).
    if (until := filters.get("until")) and until < date.max:
        entries = entries.filter(
            created_at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
        )
    return audit.with_resolution(entries, outcome=filters.get("outcome", ""))


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[AuditEntry]
    newer: int | None  # pass as ?after= for the newer page
    older: int | None  # pass as ?before= for the older page


def page(
    entries: QuerySet[AuditEntry], *, before: int | None = None, after: int | None = None
) -> Page:
    """One keyset page, newest first, with the cursors of its neighbours."""
    if after is not None:
        rows = list(entries.filter(seq__gt=after).order_by("seq")[: PAGE_SIZE + 1])
        more_newer = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        more_older = bool(rows) and entries.filter(seq__lt=rows[-1].seq).exists()
    else:
        if before is not None:
            entries = entries.filter(seq__lt=before)
        rows = list(entries.order_by("-seq")[: PAGE_SIZE + 1])
        more_older = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        more_newer = before is not None and bool(rows)
    audit.attach_resolutions(rows)
    return Page(
        entries=rows,
        newer=rows[0].seq if rows and more_newer else None,
        older=rows[-1].seq if rows and more_older else None,
    )


def deleted_models(*, before: int | None = None) -> Page:
    """Deleted models, newest first, each once: the first delete of each model that
    succeeded, through the dashboard or seen by the inventory sync (a later one can only
    have found it gone)."""
    succeeded = {"action": AuditEntry.Action.MODEL_DELETE, "outcome": AuditEntry.Outcome.SUCCEEDED}
    earlier = search(succeeded).filter(target_id=OuterRef("target_id"), seq__lt=OuterRef("seq"))
    return page(search(succeeded).exclude(Exists(earlier)), before=before)


def model_history(model_id: str, *, limit: int) -> list[AuditEntry]:
    """The newest ``limit`` entries on one model (dashboard and outside, each attempt
    with its outcome), newest first: two queries, whatever the log's size."""
    entries = search({"target": model_id}).order_by("-seq")[:limit]
    return audit.attach_resolutions(list(entries))


def last_known_card(entry: AuditEntry) -> dict[str, Any] | None:
    """The card of the model before the change: the outcome's fresh snapshot, else the attempt's."""
    resolution: AuditEntry | None = getattr(entry, "resolution", None)
    return (resolution.before if resolution else None) or entry.before


# --------------------------------------------------------------------------- exports


def _chunks(entries: QuerySet[AuditEntry]) -> Iterator[list[AuditEntry]]:
    chunk: list[AuditEntry] = []
    for entry in entries.order_by("-seq").iterator(chunk_size=EXPORT_CHUNK):
        chunk.append(entry)
        if len(chunk) == EXPORT_CHUNK:
            yield audit.attach_resolutions(chunk)
            chunk = []
    if chunk:
        yield audit.attach_resolutions(chunk)


def export_record(entry: AuditEntry) -> dict[str, Any]:
    """One exported row: the entry with its resolving outcome folded in."""
    resolution: AuditEntry | None = getattr(entry, "resolution", None)
    source = resolution or entry
    return {
        "seq": entry.seq,
        "time_utc": entry.created_at.astimezone(UTC).isoformat(),
        "kind": entry.kind,
        "action": entry.action,
        "outcome": getattr(entry, "effective_outcome", entry.outcome),
        "actor": entry.actor_username,
        "actor_email": entry.actor_email,
        "actor_role": entry.actor_role,
        "target_id": entry.target_id,
        "target_name": source.target_name or entry.target_name,
        "reason": entry.reason,
        "changes": source.changes or entry.changes,
        "upstream_status": source.upstream_status,
        "message": source.message,
        "upstream_request_id": source.upstream_request_id,
        "resolved_by_seq": resolution.seq if resolution else None,
        "resolved_at_utc": resolution.created_at.astimezone(UTC).isoformat()
        if resolution
        else None,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "request_id": entry.request_id,
        "credential_id": entry.credential_id,
        "credential_masked": entry.credential_masked,
        "before": last_known_card(entry),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # Model names come from upstream: never let a spreadsheet run them as formulas.
        value = "'" + value
    return "" if value is None else value


def csv_lines(entries: QuerySet[AuditEntry]) -> Iterable[str]:
    """The export as CSV, one chunk of rows at a time (constant memory)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for chunk in _chunks(entries):
        buffer.seek(0)
        buffer.truncate()
        for entry in chunk:
            record = export_record(entry)
            writer.writerow([_csv_cell(record[column]) for column in CSV_COLUMNS])
        yield buffer.getvalue()


def ndjson_lines(entries: QuerySet[AuditEntry]) -> Iterable[str]:
    """The export as newline-delimited JSON, one chunk at a time."""
    for chunk in _chunks(entries):
        yield "".join(
            json.dumps(export_record(entry), ensure_ascii=False) + "\n" for entry in chunk
        )
