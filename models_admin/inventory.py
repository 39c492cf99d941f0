"""The model inventory of one API key, prepared once per list call and then cached:
alias cards folded into one row, search text lower-cased, filter choices collected.
Filtering, sorting and paging then work on the cached rows; only the visible page
is ever rendered."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import operator
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Literal, NamedTuple

import msgspec
from django.conf import settings
from django.core.cache import cache
from django.core.paginator import Page, Paginator

from models_admin import remote
from models_admin.remote import FineTunedModelCard, ModelCard

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
MATCHES_KEPT = 32  # filtered row lists kept per inventory
SORTS = ("name", "-name", "created", "-created", "id", "-id")
SortKey = Literal["name", "-name", "created", "-created", "id", "-id"]


class ModelRow(msgspec.Struct, gc=False, eq=False):
    """One row of the list: a card, and every other id that names the same model.

    A struct the garbage collector does not track (it holds a card, strings and a tuple
    of strings: no cycle): building 10,000 rows on a list call then triggers no
    collection of the worker's heap."""

    card: ModelCard
    aliases: tuple[str, ...] = ()
    _haystack: str | None = None

    @property
    def id(self) -> str:
        return self.card.id

    @property
    def haystack(self) -> str:
        """Lower-cased id, name, description and aliases, for search (made on first use)."""
        text = self._haystack
        if text is None:
            card = self.card
            text = " ".join(filter(None, (card.id, card.name, card.description, *self.aliases)))
            text = self._haystack = text.lower()
        return text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelRow):
            return NotImplemented
        return self.card == other.card and self.aliases == other.aliases

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ModelRow({self.card.id!r}, aliases={self.aliases!r})"


@dataclass(frozen=True)
class Inventory:
    """The rows of one list call. Building it folds the base models' aliases (a few
    dozen cards) and wraps each fine-tuned card in a row, nothing else: search text,
    sort orders, the id index and the filter choices are made on first use, once per
    inventory (each process keeps its inventories, so a warm page reuses them).
    ``version`` names this list in the shared cache, and the pages rendered from it."""

    rows: tuple[ModelRow, ...]
    total_cards: int
    # What Mistral's list held that could not be shown at all (a card without a usable
    # id); cards with lesser problems are rows flagged with their own message.
    problems: tuple[str, ...] = ()
    version: str = ""
    # Which stored key the list comes from (masked) and when it was read from Mistral:
    # set by the session that made the list call (services/upstream.py).
    key_masked: str = ""
    read_at: datetime | None = None

    @classmethod
    def build(cls, cards: Sequence[ModelCard], *, version: str = "") -> Inventory:
        """Fold alias cards: Mistral lists each alias of a base model as its own card
        (same model, same name); the row keeps the canonical id (the one equal to the
        name, else the first seen) and lists the others as aliases. Fine-tuned models
        are one row each."""
        rows: list[ModelRow | None] = []
        families: list[tuple[int, ModelCard, set[str]]] = []
        family_of: dict[str, int] = {}
        for card in cards:
            if card.is_fine_tuned:  # one row each; only base models have aliases
                rows.append(ModelRow(card))
                continue
            names = {card.id, *card.aliases}
            index = next((family_of[n] for n in names if n in family_of), None)
            if index is None:
                index = len(families)
                families.append((len(rows), card, set()))
                rows.append(None)
            else:
                at, canonical, ids = families[index]
                if card.id == card.name and canonical.id != canonical.name:
                    ids.add(canonical.id)
                    families[index] = (at, card, ids)
            families[index][2].update(names)
            for n in names:
                family_of.setdefault(n, index)
        for at, card, ids in families:
            rows[at] = ModelRow(card, tuple(sorted(ids - {card.id})))
        return cls(
            rows=tuple(rows),  # type: ignore[arg-type]  # every None was filled above
            total_cards=len(cards),
            problems=tuple(getattr(cards, "problems", ())),
            version=version or secrets.token_hex(8),
        )

    @cached_property
    def roots(self) -> tuple[str, ...]:
        return tuple(
            sorted(
                {r.card.root for r in self.rows if isinstance(r.card, FineTunedModelCard)} - {""}
            )
        )

    @cached_property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(sorted(set().union(*(r.card.capabilities.enabled for r in self.rows))))

    @cached_property
    def choices_version(self) -> str:
        """Names what the filter form offers (the roots and capabilities): the same for
        every list call that offers the same ones, so their rendered form is shared."""
        digest = hashlib.sha256("\x1f".join((*self.roots, "\x1e", *self.capabilities)).encode())
        return f"choices-{digest.hexdigest()[:32]}"

    @cached_property
    def _index(self) -> dict[str, ModelRow]:
        index: dict[str, ModelRow] = {}
        for row in self.rows:
            index.setdefault(row.id, row)
            for alias in row.aliases:
                index.setdefault(alias, row)
        return index

    @cached_property
    def _orders(self) -> dict[str, tuple[ModelRow, ...]]:
        return {}

    @cached_property
    def _matches(self) -> dict[tuple[str, ...], tuple[ModelRow, ...]]:
        return {}

    def find(self, model_id: str) -> ModelRow | None:
        return self._index.get(model_id)

    def ordered(self, sort: SortKey) -> tuple[ModelRow, ...]:
        """Every row in the order ``sort`` names, sorted once per inventory."""
        found = self._orders.get(sort)
        if found is None:
            found = self._orders[sort] = tuple(_sorted(self.rows, sort))
        return found


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
    def filters(self) -> tuple[str, ...]:
        """What selects and orders the rows (all but the page)."""
        return (self.q, self.type, self.archived, self.root, self.capability, self.sort)

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


_BY_CREATED = operator.attrgetter("card.created", "card.id")


def _sorted(rows: Sequence[ModelRow], sort: SortKey) -> list[ModelRow]:
    key = sort.lstrip("-")
    reverse = sort.startswith("-")
    if key == "created":
        # Base models report the response time as "created": they sort after dated models.
        dated: list[ModelRow] = []
        undated: list[ModelRow] = []
        for r in rows:
            (dated if r.card.is_fine_tuned and r.card.created is not None else undated).append(r)
        dated.sort(key=_BY_CREATED, reverse=reverse)  # (created, id), in C
        undated.sort(key=lambda r: r.card.display_name.lower())
        return dated + undated
    if key == "name":
        return sorted(rows, key=lambda r: (r.card.display_name.lower(), r.id), reverse=reverse)
    return sorted(rows, key=lambda r: r.id, reverse=reverse)


def matching(inventory: Inventory, query: ModelQuery) -> list[ModelRow]:
    """Every row that matches the query's search and filters, in its order."""
    ordered = inventory.ordered(query.sort)
    if not query.is_filtered:
        return list(ordered)
    # The same search is asked for page after page: the last few are kept per inventory.
    memo = inventory._matches
    found = memo.get(query.filters)
    if found is None:
        needle = query.q.strip().lower()
        found = tuple(row for row in ordered if _matches(row, query, needle))
        if len(memo) >= MATCHES_KEPT:
            memo.clear()
        memo[query.filters] = found
    return list(found)


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

    def set_many(self, entries: Mapping[str, object], timeout: float) -> bool:
        """Set every entry, in one round trip on Redis (and atomically: one MSET); True
        when all of them were stored."""
        if self._paused():
            return False
        failed = self._call("set_many", entries, timeout)
        return failed is not _FAILED and not failed

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
    does no work per model. Every cache call goes through SafeCache.

    The shared cache holds, per API key, a small head (``_Head``: the version token, and
    which key the list was read with, masked, and when) and, under the token, the body
    of the list call (bytes, stored as they are: redis_cache.Serializer; pickled cards
    would take far longer) or, for an inventory built without one, the inventory. A
    cache of this process alone (MODEL_LIST_CACHE_BODIES off: no Redis) holds only the
    head: a second copy of the body would serve no other process. A reader asks for the
    head (one small round trip) and uses its local copy when the token matches;
    otherwise it loads the body once and reads it again (remote.wire: a few
    milliseconds per thousand models). Writing stores a new head; forgetting deletes
    it, which every process sees at once. A key whose forgetting failed is not read
    from the cache in this process until a fresh inventory has been written over it."""

    def __init__(self, max_local: int = 16) -> None:
        self.max_local = max_local
        self._local: OrderedDict[str, Inventory] = OrderedDict()
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
        head = safe_cache.get(key)
        if not isinstance(head, _Head):
            return None
        with self._lock:
            local = self._local.get(key)
            if local is not None and local.version == head.token:
                self._local.move_to_end(key)
                return local
        inventory = _loaded(safe_cache.get(f"{key}:{head.token}"), head)
        if inventory is not None:
            self._remember(key, inventory)
        return inventory

    def set(self, key: str, inventory: Inventory, body: bytes = b"") -> None:
        """Share ``inventory`` under its version; ``body``, the list call's answer it was
        read from, is what the cache keeps when given."""
        head = _Head(inventory.version, inventory.key_masked, inventory.read_at)
        timeout = settings.MODEL_LIST_CACHE_SECONDS
        with self._lock:
            replaced = self._local.get(key)
        if body and not settings.MODEL_LIST_CACHE_BODIES:
            # A cache of this process alone (no Redis): no other process would read the
            # body, and this one keeps the inventory; the head is enough.
            stored = safe_cache.set(key, head, timeout)
        else:
            # The inventory and the head that points to it, together (one MSET on
            # Redis): a reader never finds a head without its inventory (unless the
            # cache evicted it: a miss), and the two cost one round trip.
            entries = {f"{key}:{head.token}": body or inventory, key: head}
            stored = safe_cache.set_many(entries, timeout)
        if stored:
            self._stale.discard(key)
            self._remember(key, inventory)
            if replaced is not None and replaced.version != head.token:
                # The entry this one replaces (megabytes, with a body) is freed now rather
                # than at its expiry: no head points to it any more, and Redis then
                # reuses its memory for the next body instead of allocating afresh. A
                # reader that took the old head just before finds it gone: a miss.
                safe_cache.delete(f"{key}:{replaced.version}")

    def forget(self, key: str) -> None:
        with self._lock:
            self._local.pop(key, None)
        if not safe_cache.delete(key):
            self._stale.add(key)

    def _remember(self, key: str, inventory: Inventory) -> None:
        with self._lock:
            self._local[key] = inventory
            self._local.move_to_end(key)
            while len(self._local) > self.max_local:
                self._local.popitem(last=False)


class _Head(NamedTuple):
    """What the shared cache keeps per key beside the body: which inventory is current
    (``token``, its version), and the body's source: the key it was read with (masked)
    and when."""

    token: str
    key_masked: str
    read_at: datetime | None


def _loaded(value: object, head: _Head) -> Inventory | None:
    """The inventory a cache entry holds: a list call's body read again, or one pickled."""
    if isinstance(value, bytes):
        try:
            cards = remote.read_model_list(value, log=False)
        except remote.MalformedResponse:  # it was read once; a damaged entry is a miss
            return None
        return dataclasses.replace(
            Inventory.build(cards, version=head.token),
            key_masked=head.key_masked,
            read_at=head.read_at,
        )
    return value if isinstance(value, Inventory) and value.version == head.token else None


shared = SharedInventories()
