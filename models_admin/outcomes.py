"""What a model's state says about a change to it: the one judgement that both a service
reading the model back after a lost answer and ``reconcile_audit`` make.

A state is a card snapshot (audit.card_snapshot: ``name``, ``description``,
``archived``...) or None when the model is gone. The verdict is ``succeeded``,
``failed`` or ``undetermined``: a judgement never guesses, so a state that fits neither
"it happened" nor "it did not" decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models_admin.models import AuditEntry

Action, Outcome = AuditEntry.Action, AuditEntry.Outcome
State = Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str  # Outcome.SUCCEEDED, FAILED or UNDETERMINED
    note: str  # what the state showed, in words

    @property
    def settled(self) -> bool:
        return self.outcome != Outcome.UNDETERMINED


def _archived(state: Mapping[str, Any]) -> str:
    return "archived" if state.get("archived") else "not archived"


def judge(action: str, changes: Mapping[str, Any] | None, state: State) -> Verdict:
    """Whether ``action`` (with its requested ``changes``, {field: [old, new]}, for an
    update) happened, from the model's state after it."""
    if action == Action.MODEL_DELETE:
        if state is None:
            return Verdict(Outcome.SUCCEEDED, "the model is gone: the delete went through")
        return Verdict(Outcome.FAILED, "the model still exists: the delete did not happen")
    if state is None:
        return Verdict(
            Outcome.UNDETERMINED, "the model is gone, so what this change did can't be seen"
        )
    if action in (Action.MODEL_ARCHIVE, Action.MODEL_UNARCHIVE):
        wanted = action == Action.MODEL_ARCHIVE
        if bool(state.get("archived")) == wanted:
            return Verdict(Outcome.SUCCEEDED, f"the model is {_archived(state)}, as asked")
        return Verdict(
            Outcome.FAILED, f"the model is {_archived(state)}: the change did not happen"
        )
    requested = dict(changes or {})
    if all(state.get(field) == new for field, (_, new) in requested.items()):
        return Verdict(Outcome.SUCCEEDED, "the model has the requested values")
    if all(state.get(field) == old for field, (old, _) in requested.items()):
        return Verdict(
            Outcome.FAILED, "the model still has its old values: the change did not happen"
        )
    return Verdict(
        Outcome.UNDETERMINED,
        "the model has neither the old nor the requested values (changed again since?)",
    )
