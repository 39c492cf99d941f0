"""Deterministic seed data for sandbox workspaces.

Every workspace gets the same base catalogue (Mistral's canonical models, each
alias listed as its own card as the real API does) followed by ``count`` fine-tuned
models generated from ``random.Random`` seeded with a hash of (API key, count): the
same key always sees the same inventory, and two keys see different organisations,
ids and names. Values follow the reference's "ID formats and example values":

    ft:<root>:<8 hex per account>:<YYYYMMDD of created, UTC>:<first 8 hex of job>
    ft:classifier:<root>:<8 hex per account>:<YYYYMMDD>:<first 8 hex of job>
    ft:<root>:<8 hex per account>:<YYYYMMDD>:<suffix>:<first 8 hex of job>

The last form is a job created with a user ``suffix`` (the retired job API had one;
see the reference's "Suffix" row): about one completion model in eight has one,
chosen by its job id and taken from its name, so no extra random draw shifts the rest
of the inventory.

Cards are plain JSON dicts shaped exactly like ``BaseModelCard`` / ``FTModelCard``.
What the update response needs beyond a card (workspace id, root version,
classifier targets) lives in ``FineTuneExtras`` next to the card, so the cards
themselves stay valid against the OpenAPI schema.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from models_admin.remote.cards import KNOWN_CAPABILITIES

FINE_TUNED_CONTEXT: Final = 32768
# Fine-tuned models were created between these instants (UTC).
CREATED_FROM: Final = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp())
CREATED_UNTIL: Final = int(datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC).timestamp())
ARCHIVED_SHARE: Final = 0.2


@dataclass(frozen=True, slots=True)
class BaseModelSpec:
    """One canonical base model; ``aliases`` each get a card of their own."""

    id: str
    aliases: tuple[str, ...]
    description: str
    max_context_length: int
    temperature: float | None
    capabilities: frozenset[str]
    released: str  # ISO date; only used as the stored ``created`` (see Workspace.render)
    deprecation: str | None = None
    replacement: str | None = None


BASE_MODELS: Final[tuple[BaseModelSpec, ...]] = (
    BaseModelSpec(
        "mistral-large-2411",
        ("mistral-large-latest",),
        "Our top-tier reasoning model for high-complexity tasks with the latest version released November 2024.",
        131072,
        0.7,
        frozenset({"completion_chat", "function_calling", "fine_tuning"}),
        "2024-11-18",
    ),
    BaseModelSpec(
        "mistral-medium-2508",
        ("mistral-medium-latest", "mistral-medium"),
        "Our frontier-class multimodal model released August 2025.",
        131072,
        0.3,
        frozenset({"completion_chat", "function_calling", "vision"}),
        "2025-08-12",
    ),
    BaseModelSpec(
        "mistral-small-2506",
        ("mistral-small-latest",),
        "Our latest enterprise-grade small model with the latest version released June 2025.",
        131072,
        0.3,
        frozenset({"completion_chat", "function_calling", "fine_tuning", "vision"}),
        "2025-06-20",
    ),
    BaseModelSpec(
        "codestral-2508",
        ("codestral-latest",),
        "Our cutting-edge language model for coding released August 2025.",
        256000,
        0.3,
        frozenset({"completion_chat", "function_calling", "completion_fim", "fine_tuning"}),
        "2025-07-30",
    ),
    BaseModelSpec(
        "codestral-2501",
        ("codestral-2412", "codestral-2411-rc5"),
        "Our cutting-edge language model for coding released December 2024.",
        256000,
        0.3,
        frozenset({"completion_chat", "function_calling", "completion_fim", "fine_tuning"}),
        "2025-01-13",
        deprecation="2026-01-31T12:00:00Z",
        replacement="codestral-latest",
    ),
    BaseModelSpec(
        "devstral-2512",
        ("devstral-latest",),
        "Our agentic coding model for software engineering tasks, released December 2025.",
        256000,
        0.2,
        frozenset({"completion_chat", "function_calling"}),
        "2025-12-09",
    ),
    BaseModelSpec(
        "ministral-3b-2410",
        ("ministral-3b-latest",),
        "World's best edge model.",
        131072,
        0.3,
        frozenset({"completion_chat", "function_calling", "fine_tuning"}),
        "2024-10-16",
    ),
    BaseModelSpec(
        "ministral-8b-2410",
        ("ministral-8b-latest",),
        "Powerful edge model with extremely high performance/price ratio.",
        131072,
        0.3,
        frozenset({"completion_chat", "function_calling", "fine_tuning"}),
        "2024-10-16",
    ),
    BaseModelSpec(
        "pixtral-large-2411",
        ("pixtral-large-latest",),
        "Official pixtral-large-2411 Mistral AI model",
        131072,
        0.7,
        frozenset({"completion_chat", "function_calling", "vision"}),
        "2024-11-18",
    ),
    BaseModelSpec(
        "open-mistral-nemo",
        ("open-mistral-nemo-2407", "mistral-tiny-latest"),
        "Our best multilingual open source model released July 2024.",
        131072,
        0.3,
        frozenset({"completion_chat", "function_calling", "fine_tuning"}),
        "2024-07-18",
    ),
    BaseModelSpec(
        "open-mistral-7b",
        ("mistral-tiny", "mistral-tiny-2312"),
        "Our first dense model released September 2023.",
        32768,
        0.7,
        frozenset({"completion_chat", "function_calling", "fine_tuning"}),
        "2023-09-27",
        deprecation="2025-03-30T12:00:00Z",
        replacement="ministral-8b-latest",
    ),
    BaseModelSpec(
        "mistral-embed",
        ("mistral-embed-2312",),
        "Official mistral-embed Mistral AI model",
        8192,
        None,
        frozenset(),
        "2023-12-11",
    ),
    BaseModelSpec(
        "mistral-moderation-2411",
        ("mistral-moderation-latest",),
        "Official mistral-moderation-2411 Mistral AI model",
        8192,
        None,
        frozenset({"moderation"}),
        "2024-11-06",
    ),
    BaseModelSpec(
        "mistral-ocr-2505",
        ("mistral-ocr-latest",),
        "Official mistral-ocr-2505 Mistral AI model",
        16384,
        None,
        frozenset({"ocr"}),
        "2025-05-22",
    ),
    BaseModelSpec(
        "voxtral-small-2507",
        ("voxtral-small-latest",),
        "A 24B speech understanding model released July 2025.",
        32768,
        0.2,
        frozenset({"completion_chat", "function_calling", "audio"}),
        "2025-07-15",
    ),
)

# The version a root alias pointed at, reported as the update response's root_version.
_CANONICAL: Final[dict[str, str]] = {
    name: spec.id for spec in BASE_MODELS for name in (spec.id, *spec.aliases)
}

COMPLETION_ROOTS: Final = (
    "open-mistral-7b",
    "mistral-small-latest",
    "codestral-latest",
    "open-mistral-nemo",
    "mistral-large-latest",
)
CLASSIFIER_ROOTS: Final = ("ministral-3b-latest", "ministral-8b-latest")
CLASSIFIER_SHARE: Final = 0.2
# Roots whose fine-tunes learned tool use; open-mistral-7b never did.
_FUNCTION_CALLING_ROOTS: Final = frozenset(COMPLETION_ROOTS) - {"open-mistral-7b"}

_TEAMS: Final = (
    "support",
    "sales",
    "legal",
    "finance",
    "search",
    "docs",
    "billing",
    "onboarding",
    "hr",
    "marketing",
    "code-review",
    "sql",
    "contracts",
    "clinical",
    "retail",
    "travel",
)
_TASKS: Final = (
    "triage",
    "summarizer",
    "assistant",
    "extractor",
    "router",
    "qa",
    "rewriter",
    "tagger",
    "drafts",
    "faq-bot",
    "translator",
    "reply",
)
_CODE_TASKS: Final = ("autocomplete", "review", "sql-gen", "migrations", "test-writer", "refactor")
_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DESCRIPTIONS: Final = (
    "{Team} {task} trained on {month} {year} data",
    "Fine-tuned on {k}k anonymised {team} conversations",
    "Candidate for production; evaluated on the {month} {year} hold-out set",
    "Experiment: shorter answers, same data as the previous version",
    "{Team} {task}, tuned for French and English",
    "Baseline for the {team} team, {month} {year}",
)


@dataclass(frozen=True, slots=True)
class ClassifierTopic:
    name: str
    labels: tuple[str, ...]
    loss_function: str


_CLASSIFIER_TOPICS: Final = (
    ClassifierTopic(
        "intent", ("billing", "technical", "account", "sales", "other"), "single_class"
    ),
    ClassifierTopic("sentiment", ("positive", "neutral", "negative"), "single_class"),
    ClassifierTopic(
        "moderation", ("hate", "harassment", "self_harm", "sexual", "violence"), "multi_class"
    ),
    ClassifierTopic("language", ("en", "fr", "de", "es", "it"), "single_class"),
    ClassifierTopic("priority", ("p0", "p1", "p2", "p3"), "single_class"),
    ClassifierTopic("spam", ("spam", "ham"), "single_class"),
    ClassifierTopic("pii", ("email", "phone", "address", "iban"), "multi_class"),
)


@dataclass(slots=True)
class FineTuneExtras:
    """Update-response fields a card does not carry."""

    root_version: str
    model_type: str  # "completion" or "classifier"
    classifier_targets: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Inventory:
    """Everything one workspace starts with."""

    organization_id: str
    organization_hex: str
    workspace_id: str
    cards: list[dict[str, Any]]
    extras: dict[str, FineTuneExtras]
    live_created: set[str]  # base card ids whose ``created`` is the response time


def capabilities(flags: frozenset[str] | set[str]) -> dict[str, bool]:
    """Every known flag, in the reference's order, True for those in ``flags``."""
    return {flag: flag in flags for flag in KNOWN_CAPABILITIES}


def root_version(root: str) -> str:
    """The dated model a root alias resolved to (stable; the API's value is opaque)."""
    return _CANONICAL.get(root, root)


def _timestamp(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


def base_card(
    card_id: str,
    *,
    name: str,
    created: int,
    flags: frozenset[str] | set[str],
    description: str | None = None,
    max_context_length: int = FINE_TUNED_CONTEXT,
    aliases: list[str] | None = None,
    deprecation: str | None = None,
    replacement: str | None = None,
    temperature: float | None = None,
) -> dict[str, Any]:
    """A BaseModelCard as ``GET /v1/models`` returns it."""
    return {
        "id": card_id,
        "object": "model",
        "created": created,
        "owned_by": "mistralai",
        "capabilities": capabilities(flags),
        "name": name,
        "description": description,
        "max_context_length": max_context_length,
        "aliases": aliases or [],
        "deprecation": deprecation,
        "deprecation_replacement_model": replacement,
        "default_model_temperature": temperature,
        "internal": False,
        "type": "base",
    }


def base_cards() -> list[dict[str, Any]]:
    """The base catalogue: each canonical model, then one card per alias (same name)."""
    return [
        base_card(
            card_id,
            name=spec.id,
            created=_timestamp(spec.released),
            flags=spec.capabilities,
            description=spec.description,
            max_context_length=spec.max_context_length,
            aliases=[other for other in (spec.id, *spec.aliases) if other != card_id],
            deprecation=spec.deprecation,
            replacement=spec.replacement,
            temperature=spec.temperature,
        )
        for spec in BASE_MODELS
        for card_id in (spec.id, *spec.aliases)
    ]


def fine_tuned_id(
    *,
    root: str,
    organization_hex: str,
    created: int,
    job: str,
    classifier: bool,
    suffix: str | None = None,
) -> str:
    day = datetime.fromtimestamp(created, tz=UTC).strftime("%Y%m%d")
    prefix = "ft:classifier:" if classifier else "ft:"
    middle = f"{suffix}:" if suffix else ""
    return f"{prefix}{root}:{organization_hex}:{day}:{middle}{job[:8]}"


def user_suffix(job: str, name: str | None) -> str | None:
    """The suffix a user gave the job, for about one job in eight: the name without
    its version (``support-triage-v3`` gives ``support-triage``), at most 18 characters."""
    if name is None or int(job[:2], 16) % 8:
        return None
    words = (name.rsplit("-", 1)[0] if "-" in name else name).split("-")
    while len(words) > 1 and len("-".join(words)) > 18:
        words.pop()
    return "-".join(words)[:18] or None


def fine_tuned_card(
    *,
    root: str,
    organization_id: str,
    organization_hex: str,
    created: int,
    job: str,
    classifier: bool = False,
    name: str | None = None,
    description: str | None = None,
    archived: bool = False,
    function_calling: bool = False,
    completion_fim: bool = False,
    suffix: str | None = None,
) -> dict[str, Any]:
    """An FTModelCard as ``GET /v1/models`` returns it."""
    if classifier:
        flags = {"classification"}
    else:
        flags = {"completion_chat"}
        if function_calling:
            flags.add("function_calling")
        if completion_fim:
            flags.add("completion_fim")
    return {
        "id": fine_tuned_id(
            root=root,
            organization_hex=organization_hex,
            created=created,
            job=job,
            classifier=classifier,
            suffix=suffix,
        ),
        "object": "model",
        "created": created,
        "owned_by": organization_id,
        "capabilities": capabilities(flags),
        "name": name,
        "description": description,
        "max_context_length": FINE_TUNED_CONTEXT,
        "aliases": [],
        "deprecation": None,
        "deprecation_replacement_model": None,
        "default_model_temperature": None,
        "internal": False,
        "type": "fine-tuned",
        "job": job,
        "root": root,
        "archived": archived,
    }


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _rng(api_key: str, count: int) -> random.Random:
    digest = hashlib.sha256(f"{api_key}\x00{count}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))  # noqa: S311 - demo data, not secrets


def _name_and_description(
    rng: random.Random, root: str, created: int
) -> tuple[str | None, str | None]:
    when = datetime.fromtimestamp(created, tz=UTC)
    team = rng.choice(_TEAMS)
    task = rng.choice(_CODE_TASKS if root.startswith("codestral") else _TASKS)
    # Models nobody renamed have no name or description, as in real captures.
    if rng.random() < 0.15:
        name = None
    elif rng.random() < 0.25:
        name = f"{team}-{task}-{when:%Y%m}"
    else:
        name = f"{team}-{task}-v{rng.randint(1, 9)}"
    if rng.random() < 0.4:
        return name, None
    description = rng.choice(_DESCRIPTIONS).format(
        Team=team.replace("-", " ").capitalize(),
        team=team.replace("-", " "),
        task=task.replace("-", " "),
        month=_MONTHS[when.month - 1],
        year=when.year,
        k=rng.randint(2, 90),
    )
    return name, description


def _classifier_name_and_description(
    rng: random.Random, topics: list[ClassifierTopic]
) -> tuple[str | None, str | None]:
    head = "-".join(topic.name for topic in topics)
    if rng.random() < 0.15:
        return None, None
    name = f"{head}-classifier-v{rng.randint(1, 6)}"
    if rng.random() < 0.4:
        return name, None
    labels = sum(len(topic.labels) for topic in topics)
    return (
        name,
        f"Classifies {head.replace('-', ' and ')} ({labels} labels), {rng.randint(1, 40)}k examples",
    )


def inventory(api_key: str, count: int) -> Inventory:
    """The deterministic starting inventory of the workspace of ``api_key``."""
    rng = _rng(api_key, count)
    organization_id = _uuid4(rng)
    organization_hex = f"{rng.getrandbits(32):08x}"
    workspace_id = _uuid4(rng)
    cards = base_cards()
    live_created = {card["id"] for card in cards}
    extras: dict[str, FineTuneExtras] = {}

    fine_tuned: list[tuple[int, dict[str, Any], FineTuneExtras]] = []
    seen: set[str] = set()
    while len(fine_tuned) < count:
        created = rng.randint(CREATED_FROM, CREATED_UNTIL)
        job = _uuid4(rng)
        classifier = rng.random() < CLASSIFIER_SHARE
        root = rng.choice(CLASSIFIER_ROOTS if classifier else COMPLETION_ROOTS)
        if classifier:
            topics = rng.sample(_CLASSIFIER_TOPICS, 2 if rng.random() < 0.25 else 1)
            name, description = _classifier_name_and_description(rng, topics)
            targets = [
                {
                    "name": topic.name,
                    "labels": list(topic.labels),
                    "weight": 1.0 if len(topics) == 1 else round(rng.uniform(0.3, 1.0), 2),
                    "loss_function": topic.loss_function,
                }
                for topic in topics
            ]
        else:
            name, description = _name_and_description(rng, root, created)
            targets = []
        card = fine_tuned_card(
            root=root,
            organization_id=organization_id,
            organization_hex=organization_hex,
            created=created,
            job=job,
            classifier=classifier,
            name=name,
            description=description,
            archived=rng.random() < ARCHIVED_SHARE,
            function_calling=root in _FUNCTION_CALLING_ROOTS and rng.random() < 0.5,
            completion_fim=root.startswith("codestral"),
            suffix=None if classifier else user_suffix(job, name),
        )
        # Same root, day and job prefix is astronomically rare, but ids must be unique.
        if card["id"] in seen:
            continue
        seen.add(card["id"])
        model_type = "classifier" if classifier else "completion"
        fine_tuned.append((created, card, FineTuneExtras(root_version(root), model_type, targets)))

    # Oldest first, like a job history; sorting keeps the order independent of generation.
    fine_tuned.sort(key=lambda item: (item[0], item[1]["id"]))
    for _created, card, extra in fine_tuned:
        cards.append(card)
        extras[card["id"]] = extra
    return Inventory(organization_id, organization_hex, workspace_id, cards, extras, live_created)
