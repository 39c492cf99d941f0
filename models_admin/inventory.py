"""The model inventory of one API key, prepared once per list call and then cached:
alias cards folded into one row, search text lower-cased, filter choices collected.
Filtering, sorting and paging then work on the cached rows; only the visible page
is ever rendered."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from django.conf import settings
from django.core.cache import cache
from django.core.paginator import Page, Paginator

from models_admin.remote import FineTunedModelCard, ModelCard

logger = logging.getLogger(__name__)

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
    # What Mistral's list held that could not be shown at all (a card without a usable
    # id); cards with lesser problems are rows flagged with their own message.
    problems: tuple[str, ...] = ()
    # Which stored key the list comes from (masked) and when it was read from Mistral:
    # set by the session that made the list call (services/upstream.py).
    key_masked: str = ""
    read_at: datetime | None = None

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
            if isinstance(card, FineTunedModelCard) and card.root:
                roots.add(card.root)
            capabilities.update(card.capabilities.enabled)
        return cls(
            rows=tuple(rows),
            roots=tuple(sorted(roots)),
            capabilities=tuple(sorted(capabilities)),
            total_cards=total,
            problems=tuple(getattr(cards, "problems", ())),
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


class SafeCache:
    """Django's cache as an accelerator, never a dependency: a read that fails (refused,
    timed out, frozen) is a miss, a write or delete that fails is a no-op. Failures are
    logged at most once a minute; after one, this process leaves the cache alone for
    CACHE_PAUSE_SECONDS (deletes are still tried: a stale entry is worse than a slow one)."""

    LOG_EVERY = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._logged_at = -self.LOG_EVERY
        self.failures = 0  # since the process started (for tests and /readyz)

    def get(self, key: str) -> object | None:
        return self._call("get", key) if not self._paused() else None

    def set(self, key: str, value: object, timeout: float) -> bool:
        return not self._paused() and self._call("set", key, value, timeout) is not _FAILED

    def delete(self, key: str) -> bool:
        return self._call("delete", key) is not _FAILED

    def reset(self) -> None:
        """Forget past failures (tests, and a process that knows the cache is back)."""
        with self._lock:
            self._paused_until, self._logged_at, self.failures = 0.0, -self.LOG_EVERY, 0

    def _paused(self) -> bool:
        return time.monotonic() < self._paused_until

    def _call(self, method: str, *args: object) -> object:
        try:
            return getattr(cache, method)(*args)
        except Exception as exc:  # any backend, any failure: the cache is optional
            self._failed(method, exc)
            return _FAILED

    def _failed(self, method: str, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self.failures += 1
            self._paused_until = now + settings.CACHE_PAUSE_SECONDS
            if now - self._logged_at < self.LOG_EVERY:
                return
            self._logged_at = now
        logger.warning(
            "The cache failed (%s: %s); working without it. Further failures are logged "
            "at most once a minute.",
            method,
            type(exc).__name__,
        )


_FAILED = object()
safe_cache = SafeCache()


class SharedInventories:
    """Inventories in the shared cache (Redis in production, so every worker shares one
    list call), with a copy kept in this process so that a page view on a warm cache
    does not unpickle thousands of cards. Every cache call goes through SafeCache.

    The shared cache holds, per API key, a small version token and the inventory
    under that token. A reader asks for the token (one small round trip) and uses its
    local copy when the token matches; otherwise it loads the inventory once. Writing
    stores a new token; forgetting deletes it, which every process sees at once. A key
    whose forgetting failed is not read from the cache in this process until a fresh
    inventory has been written over it."""

    def __init__(self, max_local: int = 16) -> None:
        self.max_local = max_local
        self._local: OrderedDict[str, tuple[str, Inventory]] = OrderedDict()
        self._stale: set[str] = set()
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Drop the local copies and stale marks (tests)."""
        with self._lock:
            self._local.clear()
            self._stale.clear()

    def get(self, key: str) -> Inventory | None:
        if key in self._stale:
            return None
        token = safe_cache.get(key)
        if not isinstance(token, str):
            return None
        with self._lock:
            local = self._local.get(key)
            if local is not None and local[0] == token:
                self._local.move_to_end(key)
                return local[1]
        inventory = safe_cache.get(f"{key}:{token}")
        if not isinstance(inventory, Inventory):
            return None
        self._remember(key, token, inventory)
        return inventory

    def set(self, key: str, inventory: Inventory) -> None:
        token = secrets.token_hex(8)
        timeout = settings.MODEL_LIST_CACHE_SECONDS
        # The inventory first, then the token that points to it: a reader never finds
        # a token without its inventory (unless the cache evicted it: a miss).
        if safe_cache.set(f"{key}:{token}", inventory, timeout) and safe_cache.set(
            key, token, timeout
        ):
            self._stale.discard(key)
            self._remember(key, token, inventory)

    def forget(self, key: str) -> None:
        with self._lock:
            self._local.pop(key, None)
        if not safe_cache.delete(key):
            self._stale.add(key)

    def _remember(self, key: str, token: str, inventory: Inventory) -> None:
        with self._lock:
            self._local[key] = (token, inventory)
            self._local.move_to_end(key)
            while len(self._local) > self.max_local:
                self._local.popitem(last=False)


shared = SharedInventories()
