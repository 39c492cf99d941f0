"""Resolve attempts whose outcome is unknown (``manage.py reconcile_audit``).

An attempt is unknown when the process died between the upstream call and writing
the outcome, or when Mistral's answer was lost (a timeout after the request went
out). The model itself tells what happened: a deleted model is gone, an archived one
says ``archived``, a renamed one has the new name. What is found is appended as an
outcome entry by the ``reconcile_audit`` system actor; nothing is ever rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from models_admin import audit, remote, services
from models_admin.models import ApiCredential, AuditChainHead, AuditEntry

Action, Outcome = AuditEntry.Action, AuditEntry.Outcome
UPSTREAM_ACTIONS = (
    Action.MODEL_DELETE,
    Action.MODEL_UPDATE,
    Action.MODEL_ARCHIVE,
    Action.MODEL_UNARCHIVE,
)
SYSTEM_ACTOR = "system:reconcile_audit"


@dataclass(frozen=True, slots=True)
class Reconciled:
    attempt_seq: int
    action: str
    target_id: str
    verdict: str  # succeeded, failed or unknown (left as it was)
    note: str


def unknown_attempts(*, older_than: datetime) -> list[AuditEntry]:
    entries = AuditEntry.objects.filter(
        kind=AuditEntry.Kind.ATTEMPT, action__in=UPSTREAM_ACTIONS, created_at__lt=older_than
    )
    return list(audit.with_resolution(entries, outcome=Outcome.UNKNOWN).order_by("seq"))


def _judge(
    attempt: AuditEntry, card: remote.ModelCard | None
) -> tuple[str, str]:  # (outcome, note)
    if attempt.action == Action.MODEL_DELETE:
        if card is None:
            return Outcome.SUCCEEDED, "The model is gone from Mistral: the delete went through."
        return Outcome.FAILED, "The model still exists on Mistral: the delete did not happen."
    if card is None:
        return Outcome.UNKNOWN, "The model no longer exists, so what this change did can't be told."
    if attempt.action in (Action.MODEL_ARCHIVE, Action.MODEL_UNARCHIVE):
        wanted = attempt.action == Action.MODEL_ARCHIVE
        archived = bool(getattr(card, "archived", False))
        if archived == wanted:
            return (
                Outcome.SUCCEEDED,
                f"The model is {'archived' if archived else 'not archived'}, as asked.",
            )
        return (
            Outcome.FAILED,
            f"The model is {'archived' if archived else 'not archived'}: the change did not happen.",
        )
    requested: dict[str, Any] = attempt.changes or {}
    current = {field: getattr(card, field, None) for field in requested}
    if all(current[field] == new for field, (_, new) in requested.items()):
        return Outcome.SUCCEEDED, "The model has the requested values."
    if all(current[field] == old for field, (old, _) in requested.items()):
        return Outcome.FAILED, "The model still has its old values: the change did not happen."
    return Outcome.UNKNOWN, "The model has changed again since; what this change did can't be told."


def settle(
    attempt: AuditEntry,
    card: remote.ModelCard | None,
    *,
    credential: ApiCredential | None,
    system: str = SYSTEM_ACTOR,
) -> tuple[str, str]:
    """Judge one unknown attempt from the model as read now (``card``; None when it is
    gone) and append the verdict as its outcome, unless it stays unknown or another
    process resolved it meanwhile (checked under the chain's lock, so an attempt gets
    one outcome). Returns (verdict, note)."""
    verdict, note = _judge(attempt, card)
    if verdict == Outcome.UNKNOWN:
        return verdict, note
    with transaction.atomic():
        AuditChainHead.objects.select_for_update().filter(pk=1).first()
        resolved = AuditEntry.objects.filter(attempt=attempt).exclude(outcome=Outcome.UNKNOWN)
        if resolved.exists():
            return verdict, "Resolved meanwhile."
        audit.append(
            kind=AuditEntry.Kind.OUTCOME,
            action=attempt.action,
            outcome=verdict,
            actor=None,
            system=system,
            attempt=attempt,
            target_id=attempt.target_id,
            target_name=card.display_name if card else attempt.target_name,
            before=attempt.before,
            changes=attempt.changes,
            message=f"Reconciled: {note}",
            credential=credential,
        )
    return verdict, note


def reconcile_unknown(*, older_than: datetime, dry_run: bool = False) -> list[Reconciled]:
    """Check every unknown attempt older than ``older_than`` with its actor's key."""
    results = []
    for attempt in unknown_attempts(older_than=older_than):
        verdict: str = Outcome.UNKNOWN
        note = ""
        if attempt.actor is None:
            note = "The actor's account is gone, so there is no key to ask Mistral with."
        else:
            try:
                session = services.upstream_session(attempt.actor)
                try:
                    card = session.api.retrieve_model(attempt.target_id)
                except remote.ModelNotFound:
                    card = None
                if dry_run:
                    verdict, note = _judge(attempt, card)
                else:
                    verdict, note = settle(attempt, card, credential=session.credential)
            except (services.ServiceError, remote.ModelsApiError) as exc:
                note = f"Could not ask Mistral: {exc.message}"
        results.append(Reconciled(attempt.seq, attempt.action, attempt.target_id, verdict, note))
    return results
