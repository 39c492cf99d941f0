"""The audit log: who did what to which model, when, why, and what happened.

Services write it; nothing else does. Three kinds of entry:

- ``attempt``: written *before* a change goes upstream (write-ahead), with what was
  asked, by whom, from where, with which stored key;
- ``outcome``: appended after it, linked to its attempt (succeeded, failed with
  Mistral's status and message, or unknown when the answer was lost). An attempt
  with no outcome (the process died mid-call) reads as unknown until
  ``manage.py reconcile_audit`` checks the model upstream and appends what it found;
- ``event``: a self-contained fact (a denial, a key change, a role change, an export).

Every entry is a link of a hash chain: ``seq`` numbers have no gaps, each entry keeps
the previous entry's hash and its own HMAC-SHA256 (keyed by AUDIT_HMAC_KEY) over all of
its content. Appends are serialised by locking the single AuditChainHead row.

Every string is stored safely (``storable``: NUL bytes and lone surrogates replaced,
cut to its column), and hashed as stored, so a hostile name from Mistral can never
stop an entry from being written.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import DataError
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from models_admin import remote, roles, storable
from models_admin.audit_append import insert, insert_many
from models_admin.audit_hash import HASH_VERSION, canonical
from models_admin.http import client_ip
from models_admin.models import ApiCredential, AuditChainHead, AuditEntry, ModelSnapshot

if TYPE_CHECKING:
    from models_admin.http import AuthedRequest

P = ParamSpec("P")
Kind, Action, Outcome = AuditEntry.Kind, AuditEntry.Action, AuditEntry.Outcome


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, and from where: what every service receives and the log records."""

    user: User
    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""
    # The user's role, when the caller has looked it up already (a bulk job does, once,
    # rather than once per entry); otherwise each entry looks it up.
    role: roles.Role | None = None

    @classmethod
    def from_request(cls, request: AuthedRequest) -> Actor:
        return cls(
            user=request.user,
            ip=_normalised_ip(client_ip(request)),
            user_agent=request.headers.get("User-Agent", "")[:400],
            request_id=getattr(request, "id", ""),
        )


def _normalised_ip(value: str | None) -> str | None:
    """The address as the database will give it back (hashes are computed before saving)."""
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- writing


def card_snapshot(card: remote.ModelCard) -> dict[str, Any]:
    """Every field of a model card as JSON, for ``before``."""
    snapshot: dict[str, Any] = {}
    for name in card.__struct_fields__:
        value = getattr(card, name)
        if name == "extra":
            snapshot.update(dict(value))
            continue
        if isinstance(value, remote.Capabilities):
            value = dict.fromkeys(value.ordered, True)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        snapshot[name] = value
    normalised: dict[str, Any] = json.loads(canonical(snapshot))
    return normalised


def _make_storable(entry: AuditEntry, *, escape: bool = False) -> None:
    """Every string and JSON field as the database will store it (see storable.py);
    with ``escape``, also every non-ASCII character as a backslash escape."""
    for field in AuditEntry._meta.concrete_fields:
        value = getattr(entry, field.attname)
        if isinstance(value, str):
            setattr(entry, field.attname, storable.text(value, field.max_length, escape=escape))
        elif isinstance(value, dict | list):
            setattr(entry, field.attname, storable.json_value(value, escape=escape))


def new_entry(
    *,
    kind: str,
    action: str,
    outcome: str,
    actor: Actor | None,
    system: str = "",
    attempt: AuditEntry | None = None,
    target_id: str = "",
    target_name: str = "",
    before: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    reason: str = "",
    upstream_status: int | None = None,
    message: str = "",
    upstream_request_id: str = "",
    credential: ApiCredential | None = None,
) -> AuditEntry:
    """An entry not yet in the chain (``append`` or ``append_many`` puts it there).
    ``system`` names a non-human actor. An entry about a model without its name takes
    the name the inventory sync last saw, so every model entry can be found by name."""
    user = actor.user if actor else None
    role = (actor.role or roles.role_of(user)) if actor and user else None
    if not target_name and target_id and action.startswith("model."):
        target_name = _last_seen_name(target_id)
    entry = AuditEntry(
        kind=kind,
        attempt=attempt,
        actor=user,
        actor_pk=user.pk if user else None,
        actor_username=user.get_username() if user else system,
        actor_email=user.email if user else "",
        actor_role=role.value if role else "",
        action=action,
        target_id=target_id,
        target_name=target_name or "",
        before=before,
        changes=changes or {},
        details=details or {},
        reason=reason,
        outcome=outcome,
        upstream_status=upstream_status,
        message=message,
        ip=actor.ip if actor else None,
        user_agent=actor.user_agent if actor else "",
        request_id=actor.request_id if actor else "",
        upstream_request_id=upstream_request_id or "",
        credential_id=credential.pk if credential else None,
        credential_masked=credential.key_masked if credential else "",
        hash_version=HASH_VERSION,
    )
    _make_storable(entry)
    return entry


def _last_seen_name(model_id: str) -> str:
    seen = ModelSnapshot.objects.filter(model_id=model_id).order_by("-seen_at")
    row = seen.values_list("name", flat=True).first()
    return row or ""


def _appending(make: Callable[P, AuditEntry]) -> Callable[P, AuditEntry]:
    """``make``'s arguments, and the entry it makes appended to the chain and committed
    (with ``make``'s signature, so that every call is type-checked)."""

    def append(*args: P.args, **kwargs: P.kwargs) -> AuditEntry:
        entry = make(*args, **kwargs)
        try:
            return insert(entry)
        except DataError:
            # A value the database refused for a reason storable.text did not foresee:
            # the entry is still written, with every string escaped to ASCII.
            _make_storable(entry, escape=True)
            return insert(entry)

    return append


append = _appending(new_entry)


def append_many(
    entries: list[AuditEntry], *, head: AuditChainHead | None = None
) -> list[AuditEntry]:
    """Append entries made by ``new_entry`` (self-contained ones: no ``attempt``) in one
    transaction: the chain head is locked once and the rows are inserted in bulk.
    ``head``: the head a caller's transaction holds locked (``audit_append.lock_head``)."""
    if not entries:
        return entries
    try:
        return insert_many(entries, head)
    except DataError:
        for entry in entries:
            _make_storable(entry, escape=True)
        return insert_many(entries, head)


def event(
    *,
    actor: Actor,
    action: str,
    outcome: str = Outcome.SUCCEEDED,
    target_id: str = "",
    target_name: str = "",
    **fields: Any,
) -> AuditEntry:
    """Record a self-contained fact (a key change, a role change, an export...)."""
    return append(
        kind=Kind.EVENT,
        action=action,
        outcome=outcome,
        actor=actor,
        target_id=target_id,
        target_name=target_name,
        **fields,
    )


def denied(*, actor: Actor, action: str, target_id: str = "", message: str = "") -> AuditEntry:
    return event(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED,
        target_id=target_id,
        message=message or "The actor's role does not allow this.",
    )


class Attempt:
    """An attempt written ahead of its upstream call; resolve it exactly once."""

    def __init__(self, entry: AuditEntry, actor: Actor, credential: ApiCredential | None) -> None:
        self.entry = entry
        self.actor = actor
        self.credential = credential
        self.before: dict[str, Any] | None = entry.before
        # When ``before`` was read fresh from Mistral (not a cached card): the outcome's
        # details say so, and reconcile_audit takes it as evidence of the state then.
        self.before_read_at = ""
        self.sent = False  # the changing request has gone upstream
        self.outcome_entry: AuditEntry | None = None

    def read_before(self, snapshot: dict[str, Any], *, fresh: bool) -> None:
        """The card the change starts from; ``fresh`` when just read from Mistral."""
        self.before = snapshot
        self.before_read_at = timezone.now().isoformat() if fresh else ""

    def mark_sent(self) -> None:
        """Call right before the changing request: from now on a lost answer is ambiguous."""
        self.sent = True

    def _resolve(self, outcome: str, **fields: Any) -> AuditEntry:
        if self.outcome_entry is not None:
            return self.outcome_entry
        if self.before_read_at:
            fields["details"] = {
                "before_read_at": self.before_read_at,
                **(fields.get("details") or {}),
            }
        self.outcome_entry = append(
            kind=Kind.OUTCOME,
            action=self.entry.action,
            outcome=outcome,
            actor=self.actor,
            attempt=self.entry,
            target_id=self.entry.target_id,
            target_name=fields.pop("target_name", None) or self.entry.target_name,
            before=self.before,
            credential=self.credential,
            **fields,
        )
        return self.outcome_entry

    def succeeded(
        self, *, changes: dict[str, Any] | None = None, message: str = "", **fields: Any
    ) -> AuditEntry:
        return self._resolve(Outcome.SUCCEEDED, changes=changes, message=message, **fields)

    def failed(self, *, message: str, **fields: Any) -> AuditEntry:
        return self._resolve(Outcome.FAILED, message=message, **fields)

    def failed_with(self, exc: BaseException, *, note: str = "") -> AuditEntry:
        """Record how an exception ended the attempt: failed, denied, or unknown when the
        change went upstream and its answer was lost (reconcile_audit will check;
        ``note`` says what reading the model back showed)."""
        fields: dict[str, Any] = {}
        if isinstance(exc, remote.ModelsApiError):
            fields = {
                "upstream_status": exc.status,
                "message": exc.message,
                "upstream_request_id": exc.request_id or "",
            }
            # A 2xx whose body we could not read also leaves the result unknown.
            lost = exc.ambiguous or isinstance(exc, remote.MalformedResponse)
            outcome = Outcome.UNKNOWN if self.sent and lost else Outcome.FAILED
            if outcome == Outcome.UNKNOWN:
                fields["message"] = (
                    f"{exc.message} The change may or may not have happened{note}; "
                    "reconcile_audit will check."
                )
        elif isinstance(exc, PermissionDenied):
            outcome, fields = Outcome.DENIED, {"message": str(exc) or "Denied."}
        else:
            message = getattr(exc, "message", None) or f"Unexpected error ({type(exc).__name__})."
            outcome = Outcome.UNKNOWN if self.sent else Outcome.FAILED
            fields = {"message": str(message)}
        return self._resolve(outcome, **fields)


@contextmanager
def attempt(
    *,
    actor: Actor,
    action: str,
    target_id: str,
    target_name: str = "",
    before: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
    reason: str = "",
    credential: ApiCredential | None = None,
) -> Iterator[Attempt]:
    """Record an attempt, run the block, record its outcome whatever happens.

    The block should call ``mark_sent()`` before the changing request and
    ``succeeded(...)`` when done; leaving the block normally counts as succeeded, an
    exception as failed (or unknown) and is re-raised."""
    entry = append(
        kind=Kind.ATTEMPT,
        action=action,
        outcome=Outcome.UNKNOWN,
        actor=actor,
        target_id=target_id,
        target_name=target_name,
        before=before,
        changes=changes,
        reason=reason,
        credential=credential,
    )
    handle = Attempt(entry, actor, credential)
    try:
        yield handle
    except Exception as exc:
        handle.failed_with(exc)
        raise
    handle.succeeded()


# --------------------------------------------------------------------------- reading


def with_resolution(entries: QuerySet[AuditEntry], *, outcome: str = "") -> QuerySet[AuditEntry]:
    """Annotate attempts with their latest outcome (``effective_outcome``: that outcome,
    or the entry's own one: ``unknown`` for an unresolved attempt) and its seq, and
    keep only those whose effective outcome is ``outcome`` when given."""
    latest = AuditEntry.objects.filter(attempt=OuterRef("pk")).order_by("-seq")
    annotated = entries.annotate(
        resolution_seq=Subquery(latest.values("seq")[:1]),
        effective_outcome=Coalesce(Subquery(latest.values("outcome")[:1]), "outcome"),
    )
    return annotated.filter(effective_outcome=outcome) if outcome else annotated


def attach_resolutions(entries: list[AuditEntry]) -> list[AuditEntry]:
    """Fetch the resolving outcome of each annotated entry in one query
    (``entry.resolution``, None for events and unresolved attempts)."""
    wanted: list[int] = [seq for e in entries if (seq := getattr(e, "resolution_seq", None))]
    by_seq = {o.seq: o for o in AuditEntry.objects.filter(seq__in=wanted)} if wanted else {}
    for e in entries:
        seq = getattr(e, "resolution_seq", None)
        e.resolution = by_seq.get(seq) if seq else None  # type: ignore[attr-defined]
    return entries
