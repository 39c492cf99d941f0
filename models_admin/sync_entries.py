"""The inventory sync's entries (see sync.py): what a list shows of a model, what the
dashboard's own attempts could have changed, and the ``outside`` entries of what they
do not explain."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef

from models_admin import audit, remote, storable
from models_admin.audit import Action, Kind, Outcome
from models_admin.models import ApiCredential, AuditEntry

ACTOR = "outside the dashboard"
MODEL_ACTIONS = (
    Action.MODEL_UPDATE,
    Action.MODEL_ARCHIVE,
    Action.MODEL_UNARCHIVE,
    Action.MODEL_DELETE,
)
# The longest a dashboard attempt may wait for Mistral's answer (retries included).
IN_FLIGHT = timedelta(hours=1)
BATCH = 1000
TEXT_FIELDS = ("name", "description")
Row = tuple[str, str | None, str | None, bool]  # model_id, name, description, archived


@dataclass(frozen=True, slots=True)
class Seen:
    """A fine-tuned model as a list shows it, its strings as the database stores them;
    ``entry`` is the card as sent, made into a ModelCard only for the models that changed."""

    entry: dict[str, Any]
    model_id: str
    name: str | None
    description: str | None
    archived: bool

    def snapshot(self) -> dict[str, Any]:
        """The card, as audit entries keep it (audit.card_snapshot), its strings as the
        database stores them (PostgreSQL's jsonb refuses a NUL)."""
        card = remote.ModelCard.from_json(self.entry, log=False)
        snapshot: dict[str, Any] = storable.json_value(audit.card_snapshot(card))
        return snapshot


def clean_text(value: str | None, max_length: int | None = None) -> str | None:
    """storable.text, with a fast path for the usual string (ASCII, no NUL, short)."""
    if value is None:
        return None
    if value.isascii() and "\x00" not in value and (max_length is None or len(value) <= max_length):
        return value
    return storable.text(value, max_length)


# --------------------------------------------------------------------------- explaining


@dataclass(slots=True)
class Asked:
    """What the dashboard's attempts on one model asked for."""

    values: dict[str, set[str | None]] = field(default_factory=dict)  # field: new values
    archived: set[bool] = field(default_factory=set)
    deleted: bool = False


def dashboard_changes(
    *, started_seq: int, started_at: datetime, finished_seq: int
) -> dict[str, Asked]:
    """What the dashboard's attempts could have changed since the previous list: those
    recorded before this list was read (``seq <= finished_seq``), not settled before the
    previous list was asked for, and neither failed nor denied."""
    settled_before = AuditEntry.objects.filter(attempt=OuterRef("pk"), seq__lte=started_seq)
    refused = AuditEntry.objects.filter(
        attempt=OuterRef("pk"), outcome__in=(Outcome.FAILED, Outcome.DENIED)
    )
    attempts = (
        AuditEntry.objects.filter(
            kind=Kind.ATTEMPT,
            action__in=MODEL_ACTIONS,
            created_at__gte=started_at - IN_FLIGHT,
        )
        .exclude(Exists(settled_before))
        .exclude(Exists(refused))
        .order_by()
        .values_list("seq", "target_id", "action", "changes")
    )
    asked: dict[str, Asked] = {}
    # Unordered, and ``seq <= finished_seq`` checked here rather than in SQL: an order or
    # a range on seq would lead SQLite through the (kind, seq) index, every attempt in
    # the log, where (kind, created_at) reads only the last hour's.
    for seq, target_id, action, changes in attempts.iterator(chunk_size=BATCH):
        if seq > finished_seq:
            continue
        item = asked.setdefault(target_id, Asked())
        if action == Action.MODEL_DELETE:
            item.deleted = True
        elif action in (Action.MODEL_ARCHIVE, Action.MODEL_UNARCHIVE):
            item.archived.add(action == Action.MODEL_ARCHIVE)
        for name, pair in (changes or {}).items():
            if name in TEXT_FIELDS and isinstance(pair, list) and len(pair) == 2:
                item.values.setdefault(name, set()).add(clean_text(pair[1]))
    return asked


class Recorder:
    """Builds the outside entries of one comparison; counts what the dashboard explains."""

    def __init__(
        self,
        credential: ApiCredential,
        *,
        previous_at: datetime,
        seen_at: datetime,
        dashboard: dict[str, Asked],
    ) -> None:
        self.credential = credential
        self.dashboard = dashboard
        self.explained = 0
        masked = credential.key_masked
        self.details: dict[str, Any] = {
            "source": "outside",
            "seen_by": "inventory sync",
            "seen_with": masked,
            "seen_at": seen_at.isoformat(),
            "window": [previous_at.isoformat(), seen_at.isoformat()],
        }
        self.message = (
            f"Made outside the dashboard between {previous_at:%Y-%m-%d %H:%M:%S} and "
            f"{seen_at:%Y-%m-%d %H:%M:%S} UTC; seen by the inventory sync with key {masked}."
        )

    def _entry(self, action: str, model_id: str, name: str | None, **fields: Any) -> AuditEntry:
        details = {**self.details, **fields.pop("details", {})}
        return audit.new_entry(
            kind=Kind.OUTSIDE,
            action=action,
            outcome=Outcome.SUCCEEDED,
            actor=None,
            system=ACTOR,
            target_id=model_id,
            target_name=name or model_id,
            details=details,
            message=self.message,
            credential=self.credential,
            **fields,
        )

    def appeared(self, seen: Seen) -> AuditEntry:
        changes: dict[str, list[Any]] = {
            name: [None, value]
            for name, value in (("name", seen.name), ("description", seen.description))
            if value is not None
        }
        changes["archived"] = [None, seen.archived]
        card = seen.snapshot()
        return self._entry(
            Action.MODEL_APPEAR, seen.model_id, seen.name, changes=changes, details={"card": card}
        )

    def changed(self, row: Row, seen: Seen, card: dict[str, Any] | None) -> list[AuditEntry]:
        asked = self.dashboard.get(seen.model_id, Asked())
        entries = []
        texts = {}
        for index, name in enumerate(TEXT_FIELDS, start=1):
            old, new = row[index], getattr(seen, name)
            if old == new:
                continue
            if new in asked.values.get(name, ()):
                self.explained += 1
            else:
                texts[name] = [old, new]
        if texts:
            entries.append(
                self._entry(
                    Action.MODEL_UPDATE, seen.model_id, seen.name, before=card, changes=texts
                )
            )
        if row[3] != seen.archived:
            if seen.archived in asked.archived:
                self.explained += 1
            else:
                action = Action.MODEL_ARCHIVE if seen.archived else Action.MODEL_UNARCHIVE
                changes = {"archived": [row[3], seen.archived]}
                entries.append(
                    self._entry(action, seen.model_id, seen.name, before=card, changes=changes)
                )
        return entries

    def vanished(self, row: Row, card: dict[str, Any] | None) -> AuditEntry | None:
        asked = self.dashboard.get(row[0])
        if asked is not None and asked.deleted:
            self.explained += 1
            return None
        return self._entry(Action.MODEL_DELETE, row[0], row[1], before=card)
