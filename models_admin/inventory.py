"""The model inventory of one API key, prepared once per list call and then cached:
alias cards folded into one row, search text lower-cased, filter choices collected.
Filtering, sorting and paging then work on the cached rows; only the visible page
is ever rendered."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.core.cache import cache
from django.core.paginator import Page, Paginator

from models_admin.remote import FineTunedModelCard, ModelCard

PAGE_SIZE = 50
SORTS = ("name", "-name", "created", "-created", "id", "-id")
SortKey = Literal["name", "-name", "created", "-created", "id", "-id"]


# The cached types have no __slots__: pickling a slotted dataclass goes field by field
# through Python code, several times slower than restoring a plain __dict__.
@dataclass(frozen=True)
class ModelRow:
    card: ModelCard
    aliases: tuple[str, ...]  # every other id that names the same model
    haystack: str  # lower-cased id, name, description and aliases, for search

    @property
    def id(self) -> str:
        return self.card.id


@dataclass(frozen=True)
class Inventory:
    rows: tuple[ModelRow, ...]
    roots: tuple[str, ...]
    capabilities: tuple[str, ...]
    total_cards: int

    @classmethod
    def build(cls, cards: Iterable[ModelCard]) -> Inventory:
        """Fold alias cards: Mistral lists each alias of a base model as its own card
        (same model, same name); the row keeps the canonical id (the one equal to the
        name, else the first seen) and lists the others as aliases."""
        families: list[tuple[ModelCard, set[str]]] = []
        family_of: dict[str, int] = {}
        total = 0
        for card in cards:
            total += 1
            if card.is_fine_tuned:  # one row each; only base models have aliases
                families.append((card, {card.id}))
                continue
            names = {card.id, *card.aliases}
            index = next((family_of[n] for n in names if n in family_of), None)
            if index is None:
                index = len(families)
                families.append((card, set()))
            else:
                canonical, ids = families[index]
                if card.id == card.name and canonical.id != canonical.name:
                    ids.add(canonical.id)
                    families[index] = (card, ids)
            families[index][1].update(names)
            for n in names:
                family_of.setdefault(n, index)

        rows = []
        roots: set[str] = set()
        capabilities: set[str] = set()
        for card, ids in families:
            aliases = tuple(sorted(ids - {card.id}))
            text = " ".join(filter(None, (card.id, card.name, card.description, *aliases)))
            rows.append(ModelRow(card=card, aliases=aliases, haystack=text.lower()))
            if isinstance(card, FineTunedModelCard):
                roots.add(card.root)
            capabilities.update(card.capabilities.enabled)
        return cls(
            rows=tuple(rows),
            roots=tuple(sorted(roots)),
            capabilities=tuple(sorted(capabilities)),
            total_cards=total,
        )

    def find(self, model_id: str) -> ModelRow | None:
        return next(
            (row for row in self.rows if row.id == model_id or model_id in row.aliases), None
        )


@dataclass(frozen=True, slots=True)
class ModelQuery:
    q: str = ""
    type: Literal["", "base", "fine-tuned"] = ""
    archived: Literal["", "yes", "no"] = ""
    root: str = ""
    capability: str = ""
    sort: SortKey = "-created"
    page: int = 1

    @property
    def is_filtered(self) -> bool:
        return bool(self.q or self.type or self.archived or self.root or self.capability)


def _matches(row: ModelRow, query: ModelQuery, needle: str) -> bool:
    card = row.card
    if needle and needle not in row.haystack:
        return False
    if query.type == "base" and not card.is_base:
        return False
    if query.type == "fine-tuned" and not card.is_fine_tuned:
        return False
    if query.archived:
        archived = isinstance(card, FineTunedModelCard) and card.archived
        if archived != (query.archived == "yes"):
            return False
    if query.root and not (isinstance(card, FineTunedModelCard) and card.root == query.root):
        return False
    return not query.capability or query.capability in card.capabilities


def _sorted(rows: Sequence[ModelRow], sort: SortKey) -> list[ModelRow]:
    key = sort.lstrip("-")
    reverse = sort.startswith("-")
    if key == "created":
        # Base models report the response time as "created": they sort after dated models.
        dated = [r for r in rows if r.card.is_fine_tuned and r.card.created is not None]
        undated = [r for r in rows if not (r.card.is_fine_tuned and r.card.created is not None)]
        dated.sort(key=lambda r: (r.card.created or 0, r.id), reverse=reverse)
        undated.sort(key=lambda r: r.card.display_name.lower())
        return dated + undated
    if key == "name":
        return sorted(rows, key=lambda r: (r.card.display_name.lower(), r.id), reverse=reverse)
    return sorted(rows, key=lambda r: r.id, reverse=reverse)


def matching(inventory: Inventory, query: ModelQuery) -> list[ModelRow]:
    """Every row that matches the query's search and filters, in its order."""
    needle = query.q.strip().lower()
    return _sorted([row for row in inventory.rows if _matches(row, query, needle)], query.sort)


def select(inventory: Inventory, query: ModelQuery) -> Page[ModelRow]:
    """The requested page of the rows that match the query, in the requested order."""
    return Paginator(matching(inventory, query), PAGE_SIZE).get_page(query.page)


class SharedInventories:
    """Inventories in Django's cache (Redis in production, so every worker shares one
    list call), with a copy kept in this process so that a page view on a warm cache
    does not unpickle thousands of cards.

    The shared cache holds, per API key, a small version token and the inventory
    under that token. A reader asks for the token (one small round trip) and uses its
    local copy when the token matches; otherwise it loads the inventory once. Writing
    stores a new token; forgetting deletes it, which every process sees at once."""

    def __init__(self, max_local: int = 16) -> None:
        self.max_local = max_local
        self._local: OrderedDict[str, tuple[str, Inventory]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Inventory | None:
        token = cache.get(key)
        if not isinstance(token, str):
            return None
        with self._lock:
            local = self._local.get(key)
            if local is not None and local[0] == token:
                self._local.move_to_end(key)
                return local[1]
        inventory = cache.get(f"{key}:{token}")
        if not isinstance(inventory, Inventory):
            return None
        self._remember(key, token, inventory)
        return inventory

    def set(self, key: str, inventory: Inventory) -> None:
        token = secrets.token_hex(8)
        timeout = settings.MODEL_LIST_CACHE_SECONDS
        # The inventory first, then the token that points to it: a reader never finds
        # a token without its inventory (unless the cache evicted it: a miss).
        cache.set(f"{key}:{token}", inventory, timeout)
        cache.set(key, token, timeout)
        self._remember(key, token, inventory)

    def forget(self, key: str) -> None:
        cache.delete(key)
        with self._lock:
            self._local.pop(key, None)

    def _remember(self, key: str, token: str, inventory: Inventory) -> None:
        with self._lock:
            self._local[key] = (token, inventory)
            self._local.move_to_end(key)
            while len(self._local) > self.max_local:
                self._local.popitem(last=False)


shared = SharedInventories()
