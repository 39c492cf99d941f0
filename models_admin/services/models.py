"""The models: browse them, and change them (update, archive, unarchive, delete).

A change is authorised (a refusal is recorded), written ahead to the audit log with the
card last seen, sent with the actor's own key, and its outcome appended whatever
happens (audit.attempt). ``model_apply`` runs any of the bulk actions by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from models_admin import audit, outcomes, remote
from models_admin.audit import Action, Actor, Outcome
from models_admin.inventory import Inventory
from models_admin.models import ApiCredential
from models_admin.services.credentials import credential_get
from models_admin.services.errors import EditConflict, NotFineTuned, ServiceError, authorize
from models_admin.services.upstream import UpstreamSession, cached_inventory_of, upstream_session

T = TypeVar("T")

BROWSE = "models_admin.browse_models"
PERMISSIONS = {
    Action.MODEL_UPDATE: "models_admin.change_models",
    Action.MODEL_ARCHIVE: "models_admin.change_models",
    Action.MODEL_UNARCHIVE: "models_admin.change_models",
    Action.MODEL_DELETE: "models_admin.delete_models",
}


# --------------------------------------------------------------------------- browsing


def models_inventory(*, actor: Actor, refresh: bool = False) -> Inventory:
    """Every model the actor's key can see, from the cache or one list call.

    Raises MissingApiKey, UndecryptableApiKey, PermissionDenied or remote.ModelsApiError."""
    authorize(actor, BROWSE)
    if not refresh and (cached := cached_inventory_of(actor.user)) is not None:
        return cached  # a warm page: the key is not read (nor its last use recorded)
    return upstream_session(actor.user).inventory(refresh=refresh)


def model_get(*, actor: Actor, model_id: str) -> remote.ModelCard:
    """One model, fresh from Mistral. Raises like models_inventory, or remote.ModelNotFound."""
    authorize(actor, BROWSE)
    return upstream_session(actor.user).api.retrieve_model(model_id)


# --------------------------------------------------------------------------- the steps of a change


@dataclass(frozen=True, slots=True)
class _Ask:
    """A change as it was asked for: what its audit attempt records."""

    actor: Actor
    action: str
    model_id: str
    reason: str = ""
    changes: dict[str, list[str | None]] | None = None

    def authorize(self) -> None:
        model_authorize(actor=self.actor, action=self.action, target_id=self.model_id)

    def attempt(
        self, credential: ApiCredential | None, card: remote.ModelCard | None = None
    ) -> AbstractContextManager[audit.Attempt]:
        return audit.attempt(
            actor=self.actor,
            action=self.action,
            target_id=self.model_id,
            target_name=card.display_name if card else "",
            before=audit.card_snapshot(card) if card else None,
            changes=self.changes,
            reason=self.reason,
            credential=credential,
        )


@dataclass(frozen=True, slots=True)
class _ReadBack:
    """A change whose answer was lost, that reading the model back showed had happened."""

    card: remote.ModelCard | None  # None: the model is gone
    note: str

    @property
    def message(self) -> str:
        return f"Confirmed by reading the model back: {self.note}."


@dataclass(frozen=True, slots=True)
class _Change:
    """A change under way: the session it goes through and its audit attempt."""

    session: UpstreamSession
    attempt: audit.Attempt
    model_id: str

    def fine_tuned(self) -> remote.FineTunedModelCard:
        """The card to change from, kept as the attempt's before-snapshot.
        Raises NotFineTuned or remote.ModelsApiError."""
        fresh = self.session.pinned_card(self.model_id) is None
        card = self.session.current_card(self.model_id)
        self.attempt.read_before(audit.card_snapshot(card), fresh=fresh)
        if not isinstance(card, remote.FineTunedModelCard):
            raise NotFineTuned()
        return card

    def send(
        self, request: Callable[[remote.ModelsApi], T], *, changes: dict[str, Any] | None = None
    ) -> T | _ReadBack:
        """Send the changing request. When its answer is lost or unreadable, read the
        model back once, before anything else: a change that happened comes back as a
        _ReadBack (the caller records it succeeded); one that did not is recorded as
        failed, and what the read cannot settle as unknown, and the error is raised.
        Raises remote.ModelsApiError."""
        self.attempt.mark_sent()
        try:
            return request(self.session.api)
        except remote.ModelsApiError as exc:
            if not (exc.ambiguous or isinstance(exc, remote.MalformedResponse)):
                raise
            if (confirmed := self._read_back(exc, changes)) is not None:
                return confirmed
            raise

    def _read_back(
        self, exc: remote.ModelsApiError, changes: dict[str, Any] | None
    ) -> _ReadBack | None:
        """Read the model back after ``exc`` and record a failure or an unknown outcome;
        a success is left for the caller to record."""
        try:
            card = self.session.read_back(self.model_id)
        except remote.ModelsApiError as read_error:
            note = f" (reading the model back failed too: {read_error.message})"
            self.attempt.failed_with(exc, note=note)
            return None
        state = audit.card_snapshot(card) if card is not None else None
        verdict = outcomes.judge(self.attempt.entry.action, changes, state)
        if verdict.outcome == Outcome.SUCCEEDED:
            return _ReadBack(card, verdict.note)
        if verdict.outcome == Outcome.FAILED:
            self.attempt.failed(
                message=f"{exc.message} Reading the model back showed {verdict.note}.",
                upstream_status=exc.status,
                upstream_request_id=exc.request_id or "",
            )
        else:
            self.attempt.failed_with(exc, note=f" (reading the model back: {verdict.note})")
        return None


def _open_session(ask: _Ask) -> UpstreamSession:
    """The actor's session. Without a usable key the attempt is recorded all the same,
    as failed. Raises MissingApiKey or UndecryptableApiKey."""
    try:
        return upstream_session(ask.actor.user)
    except ServiceError as exc:
        with ask.attempt(credential_get(user=ask.actor.user)) as attempt:
            attempt.failed_with(exc)
        raise


@contextmanager
def _changing(ask: _Ask, session: UpstreamSession | None) -> Iterator[_Change]:
    """Write the attempt ahead (with the card last seen, so even a process that dies
    mid-call leaves a record of what the model was), run the block, record the outcome
    (see audit.attempt). Once the change has gone upstream, the cache is out of date."""
    session = session or _open_session(ask)
    with ask.attempt(session.credential, session.known_card(ask.model_id)) as attempt:
        try:
            yield _Change(session, attempt, ask.model_id)
        finally:
            if attempt.sent:
                session.changed(ask.model_id)


# --------------------------------------------------------------------------- changes


def model_authorize(*, actor: Actor, action: str, target_id: str) -> None:
    """Raise PermissionDenied, recorded as denied, unless the actor may do ``action`` (an
    Action.MODEL_* value) to ``target_id``: the check each change makes, for callers
    that check ahead (a bulk job's preparation)."""
    authorize(actor, PERMISSIONS[Action(action)], action=action, target_id=target_id)


def model_update(
    *,
    actor: Actor,
    model_id: str,
    name: str | None,
    description: str | None,
    expected_name: str | None,
    expected_description: str | None,
    session: UpstreamSession | None = None,
) -> remote.FineTunedModelCard:
    """Rename and/or re-describe a fine-tuned model (``None`` clears a field).

    ``expected_*`` are the values the user saw when the form opened: if the model has
    changed since, nothing is sent and EditConflict carries the current card.
    ``session`` when the caller shares one. Raises PermissionDenied, MissingApiKey,
    UndecryptableApiKey, NotFineTuned, EditConflict or remote.ModelsApiError
    (ApiRejected with field errors on a 422)."""
    requested = {
        field: [old, new]
        for field, old, new in (
            ("name", expected_name, name),
            ("description", expected_description, description),
        )
        if old != new
    }
    ask = _Ask(actor, Action.MODEL_UPDATE, model_id, changes=requested)
    ask.authorize()
    with _changing(ask, session) as change:
        before = change.fine_tuned()
        if (before.name, before.description) != (expected_name, expected_description):
            raise EditConflict(before)
        payload = {field: new for field, (_, new) in requested.items()}
        if not payload:
            change.attempt.succeeded(message="Nothing to change.", target_name=before.display_name)
            return before
        asked = {field: [getattr(before, field), new] for field, new in payload.items()}
        updated = change.send(lambda api: api.update_model(model_id, **payload), changes=asked)
        after = _after(before, updated)
        change.attempt.succeeded(
            changes={field: [getattr(before, field), getattr(after, field)] for field in payload},
            target_name=after.display_name,
            message=updated.message if isinstance(updated, _ReadBack) else "",
        )
    return after


def _after(
    before: remote.FineTunedModelCard,
    answer: remote.UpdatedModel | remote.ArchiveResult | _ReadBack,
) -> remote.FineTunedModelCard:
    """The card after a change: the one read back, else ``before`` with what Mistral
    answered."""
    if isinstance(answer, _ReadBack):
        return answer.card if isinstance(answer.card, remote.FineTunedModelCard) else before
    if isinstance(answer, remote.ArchiveResult):
        return msgspec.structs.replace(before, archived=answer.archived)
    return msgspec.structs.replace(
        before, name=answer.name, description=answer.description, archived=answer.archived
    )


def _set_archived(
    actor: Actor, model_id: str, *, archived: bool, session: UpstreamSession | None
) -> remote.FineTunedModelCard:
    action = Action.MODEL_ARCHIVE if archived else Action.MODEL_UNARCHIVE
    ask = _Ask(actor, action, model_id)
    ask.authorize()
    with _changing(ask, session) as change:
        before = change.fine_tuned()
        if before.archived == archived:
            change.attempt.succeeded(message="It already was.", target_name=before.display_name)
            return before
        answer = change.send(
            lambda api: api.archive_model(model_id) if archived else api.unarchive_model(model_id)
        )
        after = _after(before, answer)
        change.attempt.succeeded(
            changes={"archived": [before.archived, after.archived]},
            target_name=before.display_name,
            message=answer.message if isinstance(answer, _ReadBack) else "",
        )
    return after


def model_archive(
    *, actor: Actor, model_id: str, session: UpstreamSession | None = None
) -> remote.FineTunedModelCard:
    """Archive a fine-tuned model (reversible); ``session`` when the caller shares one.

    Raises PermissionDenied, MissingApiKey, UndecryptableApiKey, NotFineTuned or
    remote.ModelsApiError."""
    return _set_archived(actor, model_id, archived=True, session=session)


def model_unarchive(
    *, actor: Actor, model_id: str, session: UpstreamSession | None = None
) -> remote.FineTunedModelCard:
    """Unarchive a fine-tuned model. Raises like model_archive."""
    return _set_archived(actor, model_id, archived=False, session=session)


def model_delete(
    *, actor: Actor, model_id: str, reason: str, session: UpstreamSession | None = None
) -> remote.DeleteResult:
    """Delete a fine-tuned model for good (team admins only); ``reason`` is required.

    Raises PermissionDenied, MissingApiKey, UndecryptableApiKey, NotFineTuned,
    ServiceError (no reason) or remote.ModelsApiError (ModelNotFound when already gone)."""
    ask = _Ask(actor, Action.MODEL_DELETE, model_id, reason=reason)
    ask.authorize()
    with _changing(ask, session) as change:
        if not reason.strip():
            raise ServiceError("Give a reason for deleting the model.")
        before = change.fine_tuned()
        answer = change.send(lambda api: api.delete_model(model_id))
        if isinstance(answer, _ReadBack):
            result, message, status = remote.DeleteResult(model_id, True), answer.message, None
        elif answer.confirmed_by_retry:
            result, message, status = answer, "Confirmed by a retry that found it gone.", None
        else:  # Mistral answered: proof the model existed until now (reconcile_audit uses it)
            result, message, status = answer, "", 200
        change.attempt.succeeded(
            target_name=before.display_name, message=message, upstream_status=status
        )
    return result


def model_apply(
    *,
    actor: Actor,
    action: str,
    model_id: str,
    reason: str = "",
    session: UpstreamSession | None = None,
) -> remote.FineTunedModelCard | remote.DeleteResult:
    """Archive, unarchive or delete a model, by ``action`` (Action.MODEL_ARCHIVE,
    MODEL_UNARCHIVE or MODEL_DELETE, which needs ``reason``): what each item of a bulk
    job runs, with the job's one ``session``.

    Raises like the service it runs, or ValueError for another action."""
    if action == Action.MODEL_DELETE:
        return model_delete(actor=actor, model_id=model_id, reason=reason, session=session)
    if action in (Action.MODEL_ARCHIVE, Action.MODEL_UNARCHIVE):
        archived = action == Action.MODEL_ARCHIVE
        return _set_archived(actor, model_id, archived=archived, session=session)
    raise ValueError(f"No bulk model action {action!r}.")
