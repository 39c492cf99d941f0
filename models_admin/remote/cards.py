"""Typed, immutable results of the six operations, read from JSON with ``_Reader``.

``ModelCard.from_json`` picks the card class by the ``type`` discriminator; a type
this dashboard does not know yet gives an ``UnknownModelCard`` rather than an error.
``KNOWN_CAPABILITIES`` is the one list of capability flags (the sandbox seeds from it).

Read tolerantly, write exactly:

- A card that breaks the contract (``job: null``, no ``root``, a wrong type) is kept,
  flagged: the field gets its empty value ("", None, False, no capabilities) and its
  name goes into ``card.problems``; ``card.problem_message`` is the sentence to show
  ("Mistral sent an incomplete card: job"). Unknown types and fields are kept.
- A card without a usable ``id`` cannot be shown or acted on: ``list_models`` leaves it
  out and says so in ``ModelList.problems``; ``retrieve_model`` uses the id it asked for
  and flags ``id``.
- The answer to a change is read only for what the dashboard uses: ``name``,
  ``description`` and ``archived`` from an update, ``id``/``deleted`` from a delete,
  ``archived`` from archive/unarchive. Other fields are read tolerantly (flagged in
  ``problems``). When a used field is missing or wrong, the change raises
  MalformedResponse with ``ambiguous`` set: it may have happened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, TypeVar

import msgspec

from models_admin.remote.errors import MalformedResponse, malformed
from models_admin.remote.reading import _Reader

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Capability flags in the order of the reference (SPEC, Aug 2026). The API keeps
# adding flags: unknown ones are kept, missing ones read as False.
KNOWN_CAPABILITIES: Final = (
    "completion_chat",
    "function_calling",
    "reasoning",
    "completion_fim",
    "fine_tuning",
    "vision",
    "ocr",
    "classification",
    "moderation",
    "audio",
    "audio_transcription",
    "audio_transcription_realtime",
    "audio_speech",
    "unified_resources",
)
DEFAULT_CONTEXT_LENGTH: Final = 32768
NO_STRINGS: Final[tuple[str, ...]] = ()


@dataclass(frozen=True)
class Capabilities:
    """The capability flags that are true. Unknown flags are kept."""

    enabled: frozenset[str] = frozenset()

    def __contains__(self, flag: object) -> bool:
        return flag in self.enabled

    @property
    def ordered(self) -> tuple[str, ...]:
        known = [flag for flag in KNOWN_CAPABILITIES if flag in self.enabled]
        return (*known, *sorted(self.enabled.difference(KNOWN_CAPABILITIES)))

    @classmethod
    def read(cls, r: _Reader, key: str = "capabilities") -> Capabilities:
        data = r.required(key)
        if not isinstance(data, Mapping):
            raise r._fail(f"{r.where}.{key} is not an object")
        return cls(frozenset(str(name) for name, value in data.items() if value is True))


class _Lenient:
    """Reads fields through a quiet ``_Reader``, keeping what it can: a field that breaks
    the contract gets ``default`` and its name is recorded in ``problems``."""

    def __init__(self, r: _Reader) -> None:
        self.r = r
        self.problems: list[str] = []
        self.details: list[str] = []

    def take(self, key: str, read: Callable[[str], T], default: T) -> T:
        try:
            return read(key)
        except MalformedResponse as exc:
            self.problems.append(key)
            self.details.append(exc.upstream_message or key)
            return default

    def log(self, what: str) -> None:
        if self.details:
            logger.warning("Mistral sent an incomplete %s: %s", what, "; ".join(self.details))


def problem_message(problems: tuple[str, ...]) -> str:
    """The sentence a flagged card shows ("" for a card without problems)."""
    return f"Mistral sent an incomplete card: {', '.join(problems)}" if problems else ""


class _SentFields(msgspec.Struct, frozen=True, gc=False):
    """The fields every ``type`` shares, in the reference's order: positional as well as
    keyword arguments (remote.wire makes 10,000 cards a list, and 18 keywords take
    several times as long to match as 18 positions)."""

    id: str
    type: str
    object: str
    created: int | None
    owned_by: str
    name: str | None
    description: str | None
    max_context_length: int
    aliases: tuple[str, ...]
    deprecation: datetime | None
    deprecation_replacement_model: str | None
    default_model_temperature: float | None
    internal: bool
    capabilities: Capabilities
    billing_model_name: str | None


class ModelCard(_SentFields, frozen=True, kw_only=True, gc=False):
    """A card from list or retrieve: the fields every ``type`` shares.

    Cards are msgspec structs (frozen, slotted, untracked by the garbage collector: they
    hold no cycles): a 10,000-model inventory keeps 10,000 of them, at about a third of
    the memory a dataclass with a ``__dict__`` took. ``__struct_fields__`` (the field
    names: the shared ones, those of the ``type``, then ``extra`` and ``problems``) and
    ``msgspec.structs.replace`` do what ``dataclasses.fields`` and ``replace`` did;
    ``msgspec.structs.fields`` evaluates the annotations on every call (about 0.35 ms),
    so the hot paths use the names. ``extra`` and ``problems`` are keyword-only."""

    # Fields the reference does not describe, kept so the detail page can show them.
    extra: tuple[tuple[str, Any], ...] = ()
    # Fields that broke the contract (missing, null where not allowed, wrong type): the
    # card shows what it could read; see problem_message.
    problems: tuple[str, ...] = ()

    is_fine_tuned: ClassVar[bool] = False
    is_base: ClassVar[bool] = False

    COMMON_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "id",
            "type",
            "object",
            "created",
            "owned_by",
            "name",
            "description",
            "max_context_length",
            "aliases",
            "deprecation",
            "deprecation_replacement_model",
            "default_model_temperature",
            "internal",
            "capabilities",
            "billing_model_name",
        }
    )
    OWN_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @property
    def created_at(self) -> datetime | None:
        """``created`` as a time; None when absent or beyond what a datetime holds."""
        if self.created is None:
            return None
        try:
            return datetime.fromtimestamp(self.created, tz=UTC)
        except (ValueError, OverflowError, OSError):
            return None

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def problem_message(self) -> str:
        """ "Mistral sent an incomplete card: job, root", or "" when nothing is wrong."""
        return problem_message(self.problems)

    @staticmethod
    def from_json(
        data: Any, *, where: str = "model", model_id: str | None = None, log: bool = True
    ) -> ModelCard:
        """Parse one card, picking the class by its ``type`` discriminator; fields that
        break the contract are flagged in ``problems`` (see the module docstring).

        Raises MalformedResponse only when the card is not an object or has no usable
        ``id`` (and no ``model_id`` was given to stand in for it)."""
        try:
            r = _Reader(data, where, quiet=True)
            t = _Lenient(r)
            card_id = r.string("id") if model_id is None else t.take("id", r.string, model_id)
        except MalformedResponse as exc:
            if log:
                logger.warning("Malformed response from Mistral: %s", exc.upstream_message)
            raise
        type_name = t.take("type", r.opt_string, None)
        cls = _CARD_TYPES.get(type_name or "", UnknownModelCard)
        fields = cls._common(t) | cls._own(t)
        if log:
            t.log(f"card ({card_id})")
        return cls(id=card_id, type=type_name or "unknown", problems=tuple(t.problems), **fields)

    @classmethod
    def _common(cls, t: _Lenient) -> dict[str, Any]:
        r, known = t.r, cls.COMMON_FIELDS | cls.OWN_FIELDS
        return {
            "object": t.take("object", r.opt_string, None) or "model",
            "created": t.take("created", r.opt_integer, None),
            "owned_by": t.take("owned_by", r.opt_string, None) or "",
            "name": t.take("name", r.opt_string, None),
            "description": t.take("description", r.opt_string, None),
            "max_context_length": t.take("max_context_length", r.opt_integer, None)
            or DEFAULT_CONTEXT_LENGTH,
            "aliases": t.take("aliases", r.strings, NO_STRINGS),
            "deprecation": t.take("deprecation", r.opt_datetime, None),
            "deprecation_replacement_model": t.take(
                "deprecation_replacement_model", r.opt_string, None
            ),
            "default_model_temperature": t.take("default_model_temperature", r.opt_number, None),
            "internal": t.take("internal", lambda k: r.boolean(k, default=False), False),
            "capabilities": t.take(
                "capabilities", lambda k: Capabilities.read(r, k), Capabilities()
            ),
            "billing_model_name": t.take("billing_model_name", r.opt_string, None),
            "extra": tuple(sorted((k, v) for k, v in r.data.items() if k not in known)),
        }

    @classmethod
    def _own(cls, t: _Lenient) -> dict[str, Any]:
        """The fields only this ``type`` has."""
        return {}


class BaseModelCard(ModelCard, frozen=True, gc=False):
    """``type: "base"``: one of Mistral's own models (or one of its aliases)."""

    audio_transcription_capabilities: Mapping[str, Any] | None = None
    audio_speech_capabilities: Mapping[str, Any] | None = None

    is_base: ClassVar[bool] = True
    OWN_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"audio_transcription_capabilities", "audio_speech_capabilities"}
    )

    @classmethod
    def _own(cls, t: _Lenient) -> dict[str, Any]:
        return {name: t.take(name, t.r.opt_mapping, None) for name in sorted(cls.OWN_FIELDS)}


class FineTunedModelCard(ModelCard, frozen=True, gc=False):
    """``type: "fine-tuned"``: a model trained by the caller's organisation."""

    job: str
    root: str
    archived: bool

    is_fine_tuned: ClassVar[bool] = True
    OWN_FIELDS: ClassVar[frozenset[str]] = frozenset({"job", "root", "archived"})

    @classmethod
    def _own(cls, t: _Lenient) -> dict[str, Any]:
        r = t.r
        return {
            "job": t.take("job", r.string, ""),
            "root": t.take("root", r.string, ""),
            "archived": t.take("archived", lambda k: r.boolean(k, default=False), False),
        }


class UnknownModelCard(ModelCard, frozen=True, gc=False):
    """A card whose ``type`` this dashboard does not know yet (the API keeps adding them)."""


_CARD_TYPES: Final[Mapping[str, type[ModelCard]]] = {
    "base": BaseModelCard,
    "fine-tuned": FineTunedModelCard,
}


@dataclass(frozen=True)
class ClassifierTarget:
    name: str
    labels: tuple[str, ...]
    weight: float
    loss_function: str

    @classmethod
    def from_json(cls, data: Any, *, where: str, quiet: bool = False) -> ClassifierTarget:
        t = _Reader(data, where, quiet=quiet)
        return cls(
            name=t.string("name"),
            labels=t.strings("labels", required=True),
            weight=t.number("weight"),
            loss_function=t.string("loss_function"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatedModel:
    """The PATCH response: CompletionFineTunedModel or ClassifierFineTunedModel (``model_type``).

    Only ``name``, ``description`` (string or null; absent is null) and ``archived``
    (required boolean) must follow the contract: the dashboard uses them. Every other field is read tolerantly and flagged in
    ``problems``, and ``id`` falls back to the id that was updated."""

    id: str
    model_type: str
    object: str
    created: int
    owned_by: str
    workspace_id: str
    root: str
    root_version: str
    archived: bool
    name: str | None
    description: str | None
    capabilities: Capabilities
    max_context_length: int
    aliases: tuple[str, ...]
    job: str | None
    classifier_targets: tuple[ClassifierTarget, ...] = ()
    problems: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any, *, model_id: str) -> UpdatedModel:
        """Raises MalformedResponse when name, description or archived is missing or wrong."""
        r = _Reader(data, "updated model")
        # name and description are optional in the contract (absent reads as null);
        # archived is required.
        name, description = r.opt_string("name"), r.opt_string("description")
        archived = r.boolean("archived")
        q = _Reader(data, "updated model", quiet=True)
        t = _Lenient(q)
        model_type = t.take("model_type", q.opt_string, None) or "completion"
        targets: tuple[ClassifierTarget, ...] = ()
        if model_type == "classifier":
            targets = t.take("classifier_targets", _targets(q), ())
        updated = cls(
            id=t.take("id", q.string, model_id),
            model_type=model_type,
            object=t.take("object", q.opt_string, None) or "model",
            created=t.take("created", q.integer, 0),
            owned_by=t.take("owned_by", q.string, ""),
            workspace_id=t.take("workspace_id", q.string, ""),
            root=t.take("root", q.string, ""),
            root_version=t.take("root_version", q.string, ""),
            archived=archived,
            name=name,
            description=description,
            capabilities=t.take("capabilities", lambda k: Capabilities.read(q, k), Capabilities()),
            max_context_length=t.take("max_context_length", q.opt_integer, None)
            or DEFAULT_CONTEXT_LENGTH,
            aliases=t.take("aliases", q.strings, ()),
            job=t.take("job", q.opt_string, None),
            classifier_targets=targets,
            problems=tuple(t.problems),
        )
        t.log(f"update answer ({model_id})")
        return updated


def _targets(r: _Reader) -> Callable[[str], tuple[ClassifierTarget, ...]]:
    def read(key: str) -> tuple[ClassifierTarget, ...]:
        return tuple(
            ClassifierTarget.from_json(item, where=f"{key}[{i}]", quiet=True)
            for i, item in enumerate(r.array(key))
        )

    return read


@dataclass(frozen=True, slots=True)
class DeleteResult:
    id: str
    deleted: bool
    # True when an earlier attempt ended without an answer and the retry found the
    # model gone (404): the first attempt did the delete.
    confirmed_by_retry: bool = False

    @classmethod
    def from_json(cls, data: Any) -> DeleteResult:
        """Reads ``id`` and ``deleted`` (default true) only. Raises MalformedResponse."""
        r = _Reader(data, "delete response")
        return cls(id=r.string("id"), deleted=r.boolean("deleted", default=True))


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    id: str
    archived: bool

    @classmethod
    def from_json(cls, data: Any, *, model_id: str, default: bool) -> ArchiveResult:
        """Reads ``archived`` only (``id`` is the model's). Raises MalformedResponse."""
        r = _Reader(data, "archive response")
        return cls(id=model_id, archived=r.boolean("archived", default=default))


class ModelList(tuple[ModelCard, ...]):
    """The cards of ``GET /v1/models`` (a tuple), plus ``problems``: what could not be
    shown at all (an entry that is not an object, or has no usable ``id``), and ``raw``:
    the body they were read from (what a cache keeps: smaller and quicker than cards)."""

    problems: tuple[str, ...]
    raw: bytes

    def __new__(
        cls, cards: Iterable[ModelCard] = (), problems: Iterable[str] = (), raw: bytes = b""
    ) -> ModelList:
        self = super().__new__(cls, cards)
        self.problems = tuple(problems)
        self.raw = raw
        return self

    @property
    def flagged(self) -> tuple[ModelCard, ...]:
        """The cards shown with a problem (see ``ModelCard.problems``)."""
        return tuple(card for card in self if card.problems)


def model_list_from_json(body: Any, *, log: bool = True) -> ModelList:
    """The cards of a decoded ``GET /v1/models`` body, tolerantly (see the module
    docstring); entries already read into cards (remote.wire) are kept as they are.

    Raises MalformedResponse only when the body is not ``{"data": [...]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("data", []), list):
        raise malformed("model list is not {'object': 'list', 'data': [...]}")
    cards: list[ModelCard] = []
    problems: list[str] = []
    details: list[str] = []
    for i, item in enumerate(body.get("data", [])):
        if isinstance(item, ModelCard):
            cards.append(item)
            continue
        try:
            card = ModelCard.from_json(item, where=f"data[{i}]", log=False)
        except MalformedResponse as exc:
            problems.append(
                f"Mistral sent a model without a usable id (entry {i + 1}); it is not shown."
            )
            details.append(exc.upstream_message or f"data[{i}]")
            continue
        cards.append(card)
        details.extend(f"{card.id}: {field}" for field in card.problems)
    if details and log:
        logger.warning("Mistral sent incomplete cards: %s", "; ".join(details[:20]))
    return ModelList(cards, problems)
