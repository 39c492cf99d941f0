"""Reading ``GET /v1/models`` in one pass: msgspec decodes and validates the body (a
large one entry by entry) straight into typed structs (C speed, no intermediate
dicts), and the cards are made from them without going through ``_Reader`` field by
field.

The structs are the contract, exactly: every field typed as the reference says and no
field it does not name. A body whose entries all fit them (what Mistral sends) is read
in one pass. A body where one does not, because one card is odd (``job: null``, a wrong
type, an unknown ``type``, a field the reference does not know), has its entries read
again: the entries that fit take the fast way, the others go through the tolerant
reader (``ModelCard.from_json``), which keeps them flagged, so one odd card costs its
own reading, never the page. A body msgspec cannot decode at all (not UTF-8 JSON) goes
through the standard library and the tolerant reader, as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from models_admin.remote.cards import (
    DEFAULT_CONTEXT_LENGTH,
    NO_STRINGS,
    BaseModelCard,
    Capabilities,
    FineTunedModelCard,
    ModelCard,
    ModelList,
    model_list_from_json,
)
from models_admin.remote.errors import malformed

_UNSET: Final = msgspec.UNSET
OptMapping = dict[str, Any] | None | msgspec.UnsetType
OptString = str | None | msgspec.UnsetType


class _Card(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One card as the reference describes it (base and fine-tuned fields together; a
    field that does not belong to the card's ``type`` sends it the tolerant way)."""

    id: str
    capabilities: msgspec.Raw
    type: str | None = None
    object: str | None = None
    created: int | None = None
    owned_by: str | None = None
    name: str | None = None
    description: str | None = None
    max_context_length: int | None = None
    aliases: tuple[str, ...] | None = None  # a tuple: "[]" decodes to the one empty tuple
    deprecation: str | None = None
    deprecation_replacement_model: str | None = None
    default_model_temperature: float | None = None
    internal: bool = False
    billing_model_name: str | None = None
    audio_transcription_capabilities: OptMapping = _UNSET
    audio_speech_capabilities: OptMapping = _UNSET
    job: OptString = _UNSET
    root: OptString = _UNSET
    archived: bool | msgspec.UnsetType = _UNSET


class _Entries(msgspec.Struct):
    data: list[msgspec.Raw] = []


class _Whole(msgspec.Struct):
    data: list[_Card] = []


# A body up to this size is decoded in one call (WHOLE_BODY_MAX: about 5,000 cards at
# Mistral's size), a larger one entry by entry (see read_model_list).
WHOLE_BODY_MAX: Final = 4 * 1024 * 1024

_entries = msgspec.json.Decoder(_Entries)
_whole = msgspec.json.Decoder(_Whole)
_card = msgspec.json.Decoder(_Card)
_flags = msgspec.json.Decoder(dict[str, Any])
_any = msgspec.json.Decoder()


class _Odd(Exception):
    """This card needs the tolerant reader."""


class _Capabilities:
    """Capability objects repeat (a handful of distinct ones per inventory): each is
    read once per list, by its bytes."""

    def __init__(self) -> None:
        self._seen: dict[bytes, Capabilities] = {}

    def __call__(self, raw: msgspec.Raw) -> Capabilities:
        key = bytes(raw)
        found = self._seen.get(key)
        if found is None:
            try:
                flags = _flags.decode(key)
            except msgspec.ValidationError:  # not an object: the tolerant reader flags it
                raise _Odd() from None
            found = Capabilities(frozenset(str(k) for k, v in flags.items() if v is True))
            self._seen[key] = found
        return found


def _deprecation(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Odd() from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_FINE_TUNED: Final = "fine-tuned"
_BASE: Final = "base"
_MODEL: Final = "model"


def _make(w: _Card, capabilities: _Capabilities, shared: dict[Any, Any]) -> ModelCard:
    """The card ``ModelCard.from_json`` would read from the same fields (raises _Odd when
    that reader would flag something or keep an extra field). Values that repeat from
    card to card (``type``, ``object``, ``owned_by``, ``root``, ``max_context_length``)
    are shared, one object each per list (``shared`` maps each to itself): an inventory
    keeps 10,000 cards, and a separate int per card is 32 bytes more each."""
    kind = w.type
    if kind == _FINE_TUNED:
        if (
            w.audio_transcription_capabilities is not _UNSET
            or w.audio_speech_capabilities is not _UNSET
            or not isinstance(w.job, str)
            or not isinstance(w.root, str)
        ):
            raise _Odd()
    elif kind == _BASE:
        if w.job is not _UNSET or w.root is not _UNSET or w.archived is not _UNSET:
            raise _Odd()
    else:  # unknown types, and their fields, are the tolerant reader's
        raise _Odd()
    obj = w.object
    owner = w.owned_by or ""
    context = w.max_context_length or DEFAULT_CONTEXT_LENGTH
    temperature = w.default_model_temperature
    deprecation = w.deprecation
    # The shared fields by position, in the order of remote.cards._SentFields (the
    # tests compare every field with what the tolerant reader makes).
    shared_fields = (
        w.id,
        _FINE_TUNED if kind == _FINE_TUNED else _BASE,  # one string each, not one per card
        _MODEL if not obj or obj == _MODEL else obj,
        w.created,
        shared.setdefault(owner, owner),
        w.name,
        w.description,
        shared.setdefault(context, context),
        w.aliases or NO_STRINGS,
        None if deprecation is None else _deprecation(deprecation),
        w.deprecation_replacement_model,
        None if temperature is None else float(temperature),
        w.internal,
        capabilities(w.capabilities),
        w.billing_model_name,
    )
    if kind == _FINE_TUNED:
        root: str = w.root  # type: ignore[assignment]  # checked above
        return FineTunedModelCard(
            *shared_fields,
            w.job,  # type: ignore[arg-type]  # checked above
            shared.setdefault(root, root),
            False if w.archived is _UNSET else w.archived,
        )
    return BaseModelCard(
        *shared_fields,
        _mapping(w.audio_transcription_capabilities),
        _mapping(w.audio_speech_capabilities),
    )


def _mapping(value: OptMapping) -> Mapping[str, Any] | None:
    return None if isinstance(value, msgspec.UnsetType) else value


def read_model_list(body: bytes, *, status: int = 200, log: bool = True) -> ModelList:
    """The cards of a ``GET /v1/models`` body, as ``model_list_from_json`` reads them
    (tolerantly: see remote.cards), each entry straight into a card when the body keeps
    to the contract. ``log=False`` for a body read again (from the cache): its problems
    were logged.

    Raises MalformedResponse when the body is not ``{"data": [...]}``."""
    if len(body) <= WHOLE_BODY_MAX and (cards := _whole_body(body)) is not None:
        return cards
    try:
        entries = _entries.decode(body).data
    except msgspec.ValidationError:  # not {"data": [...]}: the tolerant reader says why
        return _tolerant(_any.decode(body), body, log=log)
    except msgspec.DecodeError:
        return _stdlib(body, status=status, log=log)
    capabilities = _Capabilities()
    shared: dict[Any, Any] = {}
    try:
        # A larger body, one entry at a time: each entry's struct (and the strings only
        # it needed) is freed before the next is decoded, so the memory it took is
        # reused at once; decoding every entry first left ~2.4 MB of holes between the
        # cards kept (10,000 models), which a worker's RSS kept for good.
        return ModelList(
            [_make(_card.decode(raw), capabilities, shared) for raw in entries], (), raw=body
        )
    except (msgspec.ValidationError, _Odd):
        return _by_entry(entries, body, capabilities, shared, log=log)


def _whole_body(body: bytes) -> ModelList | None:
    """The cards of a body of a few thousand, decoded in one call: a third faster than
    splitting it first (1.7 against 2.7 ms for 2,000 cards). Every entry's struct is
    alive until the cards are made, which is why a larger body goes entry by entry.
    None when the body or one card does not keep to the contract: the caller reads it
    the careful way, which says what is odd."""
    try:
        entries = _whole.decode(body).data
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    capabilities = _Capabilities()
    shared: dict[Any, Any] = {}
    try:
        return ModelList([_make(w, capabilities, shared) for w in entries], (), raw=body)
    except _Odd:
        return None


def _by_entry(
    entries: list[msgspec.Raw],
    body: bytes,
    capabilities: _Capabilities,
    shared: dict[Any, Any],
    *,
    log: bool,
) -> ModelList:
    """The entries again, the odd ones through the tolerant reader."""
    # At least one entry is odd: the tolerant reader reads those (and numbers problems
    # by position), the others come as cards already.
    cards: list[Any] = []
    for raw in entries:
        try:
            cards.append(_make(_card.decode(raw), capabilities, shared))
        except (msgspec.ValidationError, _Odd):
            cards.append(_any.decode(raw))
    return _tolerant({"data": cards}, body, log=log)


def _tolerant(decoded: Any, body: bytes, *, log: bool) -> ModelList:
    cards = model_list_from_json(decoded, log=log)
    return ModelList(cards, cards.problems, raw=body)


def _stdlib(body: bytes, *, status: int, log: bool) -> ModelList:
    """What msgspec refuses to decode (a BOM, another encoding, NaN): the standard
    library reads it, or says it is not JSON."""
    try:
        decoded = json.loads(body)
    except ValueError:
        raise malformed(f"GET /v1/models answered {status} without JSON") from None
    return _tolerant(decoded, body, log=log)
