"""Reading the audit log (team admins and auditors): the filtered list, one entry, the
deleted models, and the export."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from models_admin import audit, audit_reports, checkpoints
from models_admin.audit import Action, Actor
from models_admin.models import AuditEntry
from models_admin.services.errors import authorize

VIEW = "models_admin.view_auditentry"
HISTORY_SIZE = 20
EXPORT = "models_admin.export_auditentry"


def audit_list(
    *, actor: Actor, filters: dict[str, Any], before: int | None = None, after: int | None = None
) -> audit_reports.Page:
    """One keyset page of the entries matching ``filters``, newest first.

    Raises PermissionDenied."""
    authorize(actor, VIEW)
    return audit_reports.page(audit_reports.search(filters), before=before, after=after)


def model_history(*, actor: Actor, model_id: str) -> list[AuditEntry] | None:
    """The model's latest entries, newest first (HISTORY_SIZE at most; the audit log
    has the rest), or None when the actor may not read the audit log (the panel is
    left out; nothing is refused)."""
    if not actor.user.has_perm(VIEW):
        return None
    return audit_reports.model_history(model_id, limit=HISTORY_SIZE)


@dataclass(frozen=True, slots=True)
class EntryDetail:
    entry: AuditEntry
    attempt: AuditEntry | None  # the attempt an outcome resolves
    outcomes: list[AuditEntry]  # an attempt's outcomes, oldest first
    effective_outcome: str  # the latest outcome's, else the entry's own
    card: dict[str, Any] | None  # the model before the change: latest snapshot first
    changes: dict[str, Any]


def audit_detail(*, actor: Actor, seq: int) -> EntryDetail:
    """One entry with its outcomes and what they settled.

    Raises PermissionDenied or AuditEntry.DoesNotExist."""
    authorize(actor, VIEW)
    entry = AuditEntry.objects.select_related("attempt").get(seq=seq)
    outcomes = list(entry.outcomes.order_by("seq")) if entry.kind == AuditEntry.Kind.ATTEMPT else []
    latest = outcomes[-1] if outcomes else None
    return EntryDetail(
        entry=entry,
        attempt=entry.attempt,
        outcomes=outcomes,
        effective_outcome=latest.outcome if latest else entry.outcome,
        card=(latest.before if latest else None) or entry.before,
        changes=(latest.changes if latest else None) or entry.changes,
    )


@dataclass(frozen=True, slots=True)
class DeletedModels:
    page: audit_reports.Page
    rows: list[tuple[AuditEntry, dict[str, Any] | None]]  # each delete with the model's card


def audit_deleted(*, actor: Actor, before: int | None = None) -> DeletedModels:
    """Models deleted through the dashboard, newest first, with their last known cards.

    Raises PermissionDenied."""
    authorize(actor, VIEW)
    page = audit_reports.deleted_models(before=before)
    return DeletedModels(page, [(e, audit_reports.last_known_card(e)) for e in page.entries])


def audit_export(*, actor: Actor, filters: dict[str, Any], fmt: str) -> Iterable[str]:
    """The filtered audit log as CSV or NDJSON lines, streamed. The export is recorded
    (with its filters) before the first line goes out.

    Raises PermissionDenied (recorded as denied)."""
    authorize(actor, EXPORT, action=Action.AUDIT_EXPORT)
    entries = audit_reports.search(filters)  # a filter it refuses records no export
    audit.event(
        actor=actor,
        action=Action.AUDIT_EXPORT,
        details={"format": fmt, "filters": {k: str(v) for k, v in filters.items()}},
    )
    checkpoints.write_checkpoint()
    return audit_reports.csv_lines(entries) if fmt == "csv" else audit_reports.ndjson_lines(entries)


def audit_checkpoint(*, actor: Actor) -> checkpoints.Checkpoint:
    """A signed checkpoint of the log as it is now, for the actor to keep (see
    checkpoints.py); also written to the logs. Raises PermissionDenied."""
    authorize(actor, VIEW)
    return checkpoints.write_checkpoint()
