"""Resolve attempts whose outcome is unknown (``manage.py reconcile_audit``) from all the
evidence, never guessing.

An attempt is unknown when the process died between the upstream call and writing its
outcome, or when Mistral's answer was lost and reading the model back could not settle
it. For each one, oldest first, the evidence is weighed in this order:

1. the later attempts on the same model, in order. The first one that shows the model's
   state (the card it read fresh from Mistral before its own change, kept in its
   outcome; or a 404 that found the model gone) shows the state right after the unknown
   one, unless an attempt in between may have changed it. A later delete that Mistral
   answered (200), or any later sight of the model, proves an earlier delete did not
   happen, whatever came in between;
2. the model's current state, read with the actor's key, only when nothing later
   touched the model.

The verdict is appended as an outcome entry by the ``reconcile_audit`` system actor and
names its evidence (entry numbers, or "current state read at ..."). When the evidence
cannot decide, the verdict is ``undetermined`` with the reason: final, never looked at
again. Only a failure to ask (Mistral down, no key) leaves the attempt unknown, for
the next run. Nothing is ever rewritten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from models_admin import audit, outcomes, remote, services
from models_admin.models import ApiCredential, AuditChainHead, AuditEntry

Action, Outcome = AuditEntry.Action, AuditEntry.Outcome
logger = logging.getLogger(__name__)
UPSTREAM_ACTIONS = (
    Action.MODEL_DELETE,
    Action.MODEL_UPDATE,
    Action.MODEL_ARCHIVE,
    Action.MODEL_UNARCHIVE,
)
SYSTEM_ACTOR = "system:reconcile_audit"
# A state seen in the log: found (a card snapshot, or None when the model was gone).
_Seen = tuple[bool, dict[str, Any] | None]
_NOT_SEEN: _Seen = (False, None)


@dataclass(frozen=True, slots=True)
class Reconciled:
    attempt_seq: int
    action: str
    target_id: str
    verdict: str  # succeeded, failed, undetermined, or unknown (left for the next run)
    note: str  # the verdict's reason and evidence


def unknown_attempts(*, older_than: datetime) -> list[AuditEntry]:
    entries = AuditEntry.objects.filter(
        kind=AuditEntry.Kind.ATTEMPT, action__in=UPSTREAM_ACTIONS, created_at__lt=older_than
    )
    return list(audit.with_resolution(entries, outcome=Outcome.UNKNOWN).order_by("seq"))


def _later_attempts(attempt: AuditEntry) -> list[AuditEntry]:
    later = AuditEntry.objects.filter(
        kind=AuditEntry.Kind.ATTEMPT,
        action__in=UPSTREAM_ACTIONS,
        target_id=attempt.target_id,
        seq__gt=attempt.seq,
    )
    return audit.attach_resolutions(list(audit.with_resolution(later).order_by("seq")))


def _seen_before(entry: AuditEntry) -> _Seen:
    """The model's state just before ``entry``, when its outcome shows it: the card it
    read fresh from Mistral, or gone when that read answered 404."""
    resolution: AuditEntry | None = getattr(entry, "resolution", None)
    if resolution is None or resolution.actor_username == SYSTEM_ACTOR:
        return _NOT_SEEN
    if (resolution.details or {}).get("before_read_at") and resolution.before:
        return True, resolution.before
    if resolution.outcome == Outcome.FAILED and resolution.upstream_status == 404:
        return True, None
    return _NOT_SEEN


def _answered_delete(entry: AuditEntry) -> bool:
    """A delete that Mistral answered 200: the model existed until then."""
    resolution: AuditEntry | None = getattr(entry, "resolution", None)
    return (
        entry.action == Action.MODEL_DELETE
        and resolution is not None
        and resolution.outcome == Outcome.SUCCEEDED
        and resolution.upstream_status == 200
    )


def _may_have_changed(entry: AuditEntry) -> bool:
    resolution: AuditEntry | None = getattr(entry, "resolution", None)
    return resolution is None or resolution.outcome != Outcome.FAILED


def _from_later(
    attempt: AuditEntry, later: list[AuditEntry]
) -> outcomes.Verdict | AuditEntry | None:
    """The verdict that later entries prove, or the first later entry that may have
    changed the model without showing its state (then nothing after it can be used,
    except as proof that the model still existed)."""
    touched: AuditEntry | None = None
    for entry in later:
        seen, state = _seen_before(entry)
        existed = (seen and state is not None) or _answered_delete(entry)
        if attempt.action == Action.MODEL_DELETE and existed:
            how = "Mistral answered its delete" if _answered_delete(entry) else "it was read"
            return outcomes.Verdict(
                Outcome.FAILED,
                f"the model still existed at entry #{entry.seq} ({how}): the delete did not happen",
            )
        if seen and touched is None:
            verdict = outcomes.judge(attempt.action, attempt.changes, state)
            return outcomes.Verdict(
                verdict.outcome,
                f"{verdict.note}, as the state read before entry #{entry.seq} shows",
            )
        if touched is None and _may_have_changed(entry):
            touched = entry
    return touched


def _from_current_state(
    attempt: AuditEntry,
) -> tuple[outcomes.Verdict, ApiCredential | None, remote.ModelCard | None]:
    """The verdict from the model as Mistral has it now, read with the actor's key."""
    if attempt.actor is None:
        return (
            outcomes.Verdict(
                Outcome.UNDETERMINED,
                "no later entry shows the model, and the actor's account is gone, "
                "so there is no key to read its current state with",
            ),
            None,
            None,
        )
    try:
        session = services.upstream_session(attempt.actor)
        read_at = timezone.now()
        card = session.read_back(attempt.target_id)
    except (services.ServiceError, remote.ModelsApiError) as exc:
        return (
            outcomes.Verdict(Outcome.UNKNOWN, f"Could not ask Mistral: {exc.message}"),
            None,
            None,
        )
    state = audit.card_snapshot(card) if card is not None else None
    verdict = outcomes.judge(attempt.action, attempt.changes, state)
    note = f"{verdict.note} (current state read at {read_at.isoformat(timespec='seconds')})"
    return outcomes.Verdict(verdict.outcome, note), session.credential, card


def _weigh(
    attempt: AuditEntry,
) -> tuple[outcomes.Verdict, ApiCredential | None, remote.ModelCard | None]:
    found = _from_later(attempt, _later_attempts(attempt))
    if isinstance(found, AuditEntry):
        return (
            outcomes.Verdict(
                Outcome.UNDETERMINED,
                f"entry #{found.seq} may have changed the model since, and no later entry "
                "shows its state in between",
            ),
            None,
            None,
        )
    if found is not None:
        return found, None, None
    return _from_current_state(attempt)


def reconcile_unknown(*, older_than: datetime, dry_run: bool = False) -> list[Reconciled]:
    """Weigh the evidence for every unknown attempt older than ``older_than``, oldest
    first, and append each verdict (unless ``dry_run``)."""
    results = []
    for attempt in unknown_attempts(older_than=older_than):
        try:
            results.append(_settle(attempt, dry_run=dry_run))
        except DatabaseError:
            # One entry the database refuses must never stop the others: it stays
            # unknown, and the next run tries it again.
            logger.exception("Could not record a verdict for audit entry #%s", attempt.seq)
    return results


def _settle(attempt: AuditEntry, *, dry_run: bool) -> Reconciled:
    verdict, credential, card = _weigh(attempt)
    note = verdict.note[:1].upper() + verdict.note[1:]
    if verdict.outcome != Outcome.UNKNOWN and not dry_run:
        _append_verdict(attempt, verdict.outcome, f"Reconciled: {note}.", card, credential)
    return Reconciled(attempt.seq, attempt.action, attempt.target_id, verdict.outcome, note)


def settle(
    attempt: AuditEntry,
    card: remote.ModelCard | None,
    *,
    credential: ApiCredential | None,
    system: str = SYSTEM_ACTOR,
) -> outcomes.Verdict:
    """Judge one unknown attempt from the model as just read (``card``; None when it is
    gone), for a bulk worker taking over a dead worker's item, and append the verdict."""
    state = audit.card_snapshot(card) if card is not None else None
    verdict = outcomes.judge(attempt.action, attempt.changes, state)
    note = f"{verdict.note} (read back by the worker that took the item over)"
    _append_verdict(attempt, verdict.outcome, f"Reconciled: {note}.", card, credential, system)
    return verdict


def _append_verdict(
    attempt: AuditEntry,
    outcome: str,
    message: str,
    card: remote.ModelCard | None,
    credential: ApiCredential | None,
    system: str = SYSTEM_ACTOR,
) -> None:
    """Append the verdict, unless another process resolved the attempt meanwhile
    (checked under the chain's lock, so an attempt gets one outcome)."""
    with transaction.atomic():
        AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if AuditEntry.objects.filter(attempt=attempt).exclude(outcome=Outcome.UNKNOWN).exists():
            return
        audit.append(
            kind=AuditEntry.Kind.OUTCOME,
            action=attempt.action,
            outcome=outcome,
            actor=None,
            system=system,
            attempt=attempt,
            target_id=attempt.target_id,
            target_name=card.display_name if card else attempt.target_name,
            before=attempt.before,
            changes=attempt.changes,
            message=message,
            credential=credential,
        )
