"""Typed, immutable results of the six operations, read from JSON with ``_Reader``.

``ModelCard.from_json`` picks the card class by the ``type`` discriminator; a type
this dashboard does not know yet gives an ``UnknownModelCard`` rather than an error.
``KNOWN_CAPABILITIES`` is the one list of capability flags (the sandbox seeds from it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from models_admin.remote.errors import malformed
from models_admin.remote.reading import _Reader

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
    def from_json(cls, data: object, *, where: str) -> Capabilities:
        if not isinstance(data, Mapping):
            raise malformed(f"{where}.capabilities is not an object")
        return cls(frozenset(str(name) for name, value in data.items() if value is True))


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """A card from list or retrieve: the fields every ``type`` shares."""

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
    # Fields the reference does not describe, kept so the detail page can show them.
    extra: tuple[tuple[str, Any], ...] = ()

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

    @staticmethod
    def from_json(data: Any, *, where: str = "model") -> ModelCard:
        """Parse one card, picking the class by its ``type`` discriminator.

        Raises MalformedResponse."""
        r = _Reader(data, where)
        cls = _CARD_TYPES.get(r.opt_string("type") or "", UnknownModelCard)
        return cls(**cls._common(r), **cls._own(r))

    @classmethod
    def _common(cls, r: _Reader) -> dict[str, Any]:
        known = cls.COMMON_FIELDS | cls.OWN_FIELDS
        return {
            "id": r.string("id"),
            "type": r.opt_string("type") or "unknown",
            "object": r.opt_string("object") or "model",
            "created": r.opt_integer("created"),
            "owned_by": r.opt_string("owned_by") or "",
            "name": r.opt_string("name"),
            "description": r.opt_string("description"),
            "max_context_length": r.opt_integer("max_context_length") or DEFAULT_CONTEXT_LENGTH,
            "aliases": r.strings("aliases"),
            "deprecation": r.opt_datetime("deprecation"),
            "deprecation_replacement_model": r.opt_string("deprecation_replacement_model"),
            "default_model_temperature": r.opt_number("default_model_temperature"),
            "internal": r.boolean("internal", default=False),
            "capabilities": Capabilities.from_json(r.required("capabilities"), where=r.where),
            "billing_model_name": r.opt_string("billing_model_name"),
            "extra": tuple(sorted((k, v) for k, v in r.data.items() if k not in known)),
        }

    @classmethod
    def _own(cls, r: _Reader) -> dict[str, Any]:
        """The fields only this ``type`` has."""
        return {}


@dataclass(frozen=True, kw_only=True)
class BaseModelCard(ModelCard):
    """``type: "base"``: one of Mistral's own models (or one of its aliases)."""

    audio_transcription_capabilities: Mapping[str, Any] | None = None
    audio_speech_capabilities: Mapping[str, Any] | None = None

    is_base: ClassVar[bool] = True
    OWN_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"audio_transcription_capabilities", "audio_speech_capabilities"}
    )

    @classmethod
    def _own(cls, r: _Reader) -> dict[str, Any]:
        return {name: r.opt_mapping(name) for name in sorted(cls.OWN_FIELDS)}


@dataclass(frozen=True, kw_only=True)
class FineTunedModelCard(ModelCard):
    """``type: "fine-tuned"``: a model trained by the caller's organisation."""

    job: str
    root: str
    archived: bool

    is_fine_tuned: ClassVar[bool] = True
    OWN_FIELDS: ClassVar[frozenset[str]] = frozenset({"job", "root", "archived"})

    @classmethod
    def _own(cls, r: _Reader) -> dict[str, Any]:
        return {
            "job": r.string("job"),
            "root": r.string("root"),
            "archived": r.boolean("archived", default=False),
        }


@dataclass(frozen=True, kw_only=True)
class UnknownModelCard(ModelCard):
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
    def from_json(cls, data: Any, *, where: str) -> ClassifierTarget:
        t = _Reader(data, where)
        return cls(
            name=t.string("name"),
            labels=t.strings("labels", required=True),
            weight=t.number("weight"),
            loss_function=t.string("loss_function"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatedModel:
    """The PATCH response: CompletionFineTunedModel or ClassifierFineTunedModel (``model_type``)."""

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

    @classmethod
    def from_json(cls, data: Any) -> UpdatedModel:
        """Raises MalformedResponse."""
        r = _Reader(data, "updated model")
        model_type = r.opt_string("model_type") or "completion"
        targets: tuple[ClassifierTarget, ...] = ()
        if model_type == "classifier":
            targets = tuple(
                ClassifierTarget.from_json(item, where=f"classifier_targets[{i}]")
                for i, item in enumerate(r.array("classifier_targets"))
            )
        return cls(
            id=r.string("id"),
            model_type=model_type,
            object=r.opt_string("object") or "model",
            created=r.integer("created"),
            owned_by=r.string("owned_by"),
            workspace_id=r.string("workspace_id"),
            root=r.string("root"),
            root_version=r.string("root_version"),
            archived=r.boolean("archived"),
            name=r.opt_string("name"),
            description=r.opt_string("description"),
            capabilities=Capabilities.from_json(r.required("capabilities"), where=r.where),
            max_context_length=r.opt_integer("max_context_length") or DEFAULT_CONTEXT_LENGTH,
            aliases=r.strings("aliases"),
            job=r.opt_string("job"),
            classifier_targets=targets,
        )


@dataclass(frozen=True, slots=True)
class DeleteResult:
    id: str
    deleted: bool
    # True when an earlier attempt ended without an answer and the retry found the
    # model gone (404): the first attempt did the delete.
    confirmed_by_retry: bool = False

    @classmethod
    def from_json(cls, data: Any) -> DeleteResult:
        r = _Reader(data, "delete response")
        return cls(id=r.string("id"), deleted=r.boolean("deleted", default=True))


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    id: str
    archived: bool

    @classmethod
    def from_json(cls, data: Any, *, default: bool) -> ArchiveResult:
        r = _Reader(data, "archive response")
        return cls(id=r.string("id"), archived=r.boolean("archived", default=default))


def model_list_from_json(body: Any) -> tuple[ModelCard, ...]:
    """The cards of a ``GET /v1/models`` body. Raises MalformedResponse."""
    if not isinstance(body, dict) or not isinstance(body.get("data", []), list):
        raise malformed("model list is not {'object': 'list', 'data': [...]}")
    return tuple(
        ModelCard.from_json(item, where=f"data[{i}]") for i, item in enumerate(body.get("data", []))
    )
