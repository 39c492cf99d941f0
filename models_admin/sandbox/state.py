"""Sandbox state: per-key workspaces, the faults and the request log.

Everything here is shared by the server's request threads, so every mutation
happens under a lock: ``SandboxState`` guards the workspace table and the log,
each ``Workspace`` guards its own models (``Faults``, in ``faults``, guards its own).

Workspace cards are replaced, never mutated in place (copy on write), so a reader
holding a snapshot of ``models.values()`` can serialise it without a lock.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Final

from models_admin.sandbox import seed
from models_admin.sandbox.faults import Faults, is_int

NAME_MAX_LENGTH: Final = 128
DESCRIPTION_MAX_LENGTH: Final = 2048


def fingerprint(api_key: str) -> str:
    """sha256 hex of a key: what the log keeps instead of the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One ``/v1/...`` request as it arrived."""

    method: str
    path: str  # raw, still percent-encoded, without the query string
    query: dict[str, str]
    json: Any | None  # decoded body; None when there was none or it was not JSON
    key_fingerprint: str | None  # fingerprint() of the bearer token, None without one
    peer: str = ""  # client "host:port": distinct values = distinct connections (keep-alive checks)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------ workspaces


class ModelMissing(LookupError):
    """No model with that id in the workspace (or not one the operation applies to)."""


class BaseModelProtected(PermissionError):
    """A base model cannot be deleted."""


def is_fine_tuned(card: dict[str, Any]) -> bool:
    return card.get("type") == "fine-tuned"


class Workspace:
    """What one API key owns: the base catalogue plus its fine-tuned models."""

    def __init__(self, inventory: seed.Inventory) -> None:
        self.organization_id = inventory.organization_id
        self.organization_hex = inventory.organization_hex
        self.workspace_id = inventory.workspace_id
        self.models: dict[str, dict[str, Any]] = {card["id"]: card for card in inventory.cards}
        self._extras = inventory.extras
        self._live_created = inventory.live_created
        self._lock = threading.RLock()

    # -- raw access (tests and the control endpoint)

    def put(self, card: dict[str, Any]) -> None:
        """Add (at the end) or replace (in place) a raw card, served verbatim from now on."""
        model_id = card.get("id")
        if not isinstance(model_id, str):
            raise ValueError("a card needs a string 'id'")
        with self._lock:
            self.models[model_id] = card
            self._live_created.discard(model_id)

    def put_without_id(self, card: dict[str, Any]) -> None:
        """Add a card that has no usable ``id`` (a contract breach to show): listed, but
        no route can name it."""
        with self._lock:
            self.models[f"\x00no-id-{len(self.models)}"] = card

    def get(self, model_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self.models.get(model_id)

    def set_extras(self, model_id: str, extras: seed.FineTuneExtras) -> None:
        with self._lock:
            self._extras[model_id] = extras

    # -- the six operations

    def list_cards(
        self, *, provider: str | None = None, model: str | None = None
    ) -> list[dict[str, Any]]:
        """Cards in workspace order; ``provider`` matches owned_by, ``model`` the id or an alias."""
        with self._lock:
            cards = list(self.models.values())
        if provider:
            cards = [card for card in cards if card.get("owned_by") == provider]
        if model:
            cards = [
                card
                for card in cards
                if card.get("id") == model or model in (card.get("aliases") or ())
            ]
        now = int(time.time())
        return [self._render(card, now) for card in cards]

    def retrieve(self, model_id: str) -> dict[str, Any]:
        card = self.get(model_id)
        if card is None:
            raise ModelMissing(model_id)
        return self._render(card, int(time.time()))

    def delete(self, model_id: str) -> dict[str, Any]:
        with self._lock:
            card = self.models.get(model_id)
            if card is None:
                raise ModelMissing(model_id)
            if not is_fine_tuned(card):
                raise BaseModelProtected(model_id)
            del self.models[model_id]
            self._extras.pop(model_id, None)
        return {"id": model_id, "object": "model", "deleted": True}

    def update(self, model_id: str, changes: dict[str, str | None]) -> dict[str, Any]:
        """Apply already-validated name/description changes; return the update response."""
        with self._lock:
            card = self._fine_tuned(model_id)
            card = {**card, **changes}
            self.models[model_id] = card
            return self._update_response(card)

    def set_archived(self, model_id: str, archived: bool) -> dict[str, Any]:
        with self._lock:
            card = self._fine_tuned(model_id)
            if card.get("archived") is not archived:
                self.models[model_id] = {**card, "archived": archived}
        return {"id": model_id, "object": "model", "archived": archived}

    # -- helpers

    def _fine_tuned(self, model_id: str) -> dict[str, Any]:
        card = self.models.get(model_id)
        # The fine-tuning routes do not know base models at all, hence 404 rather than 403.
        if card is None or not is_fine_tuned(card):
            raise ModelMissing(model_id)
        return card

    def _render(self, card: dict[str, Any], now: int) -> dict[str, Any]:
        # The real API reports the response time as a base model's ``created``.
        if card.get("id") in self._live_created:
            return {**card, "created": now}
        return card

    def _extras_for(self, card: dict[str, Any]) -> seed.FineTuneExtras:
        extras = self._extras.get(card["id"])
        if extras is not None:
            return extras
        capabilities = card.get("capabilities")
        classifier = str(card["id"]).startswith("ft:classifier:") or (
            isinstance(capabilities, dict) and capabilities.get("classification") is True
        )
        root = card.get("root")
        return seed.FineTuneExtras(
            root_version=seed.root_version(root if isinstance(root, str) else ""),
            model_type="classifier" if classifier else "completion",
        )

    def _update_response(self, card: dict[str, Any]) -> dict[str, Any]:
        extras = self._extras_for(card)
        classifier = extras.model_type == "classifier"
        raw_caps = card.get("capabilities")
        caps: dict[str, Any] = raw_caps if isinstance(raw_caps, dict) else {}
        created = card.get("created")
        owned_by = card.get("owned_by")
        root = card.get("root")
        context = card.get("max_context_length")
        aliases = card.get("aliases")
        job = card.get("job")
        response: dict[str, Any] = {
            "id": card["id"],
            "object": "model",
            "created": created if is_int(created) else 0,
            "owned_by": owned_by if isinstance(owned_by, str) else self.organization_id,
            "workspace_id": self.workspace_id,
            "root": root if isinstance(root, str) else "",
            "root_version": extras.root_version,
            "archived": card.get("archived") is True,
            "name": card.get("name"),
            "description": card.get("description"),
            "capabilities": {
                "completion_chat": bool(caps.get("completion_chat", not classifier)),
                "completion_fim": bool(caps.get("completion_fim", False)),
                "function_calling": bool(caps.get("function_calling", False)),
                "fine_tuning": bool(caps.get("fine_tuning", False)),
                "classification": bool(caps.get("classification", classifier)),
            },
            "max_context_length": context if is_int(context) else seed.FINE_TUNED_CONTEXT,
            "aliases": aliases if isinstance(aliases, list) else [],
            "job": job if isinstance(job, str) else None,
            "model_type": extras.model_type,
        }
        if classifier:
            response["classifier_targets"] = [dict(target) for target in extras.classifier_targets]
        return response


# ----------------------------------------------------------------------------- state


class SandboxState:
    """All workspaces, the faults and the request log of one sandbox server."""

    def __init__(
        self,
        *,
        models: int = 40,
        latency_ms: int = 0,
        rate_limit: float = 0.0,
        record_limit: int | None = None,
    ) -> None:
        if models < 0:
            raise ValueError("models must be >= 0")
        self.models = models
        self.record_limit = record_limit
        self.faults = Faults(latency_ms=latency_ms, rate_limit=rate_limit)
        self.requests: list[RecordedRequest] = []
        self._workspaces: dict[str, Workspace] = {}
        self.generation = 0  # bumped by reset()
        # /v1 requests being handled now, and the most at once since the last reset:
        # how tests and benchmarks see a client's concurrency.
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        # Set to wake every request sleeping in a latency or hang: replaced on reset(),
        # set for good by close().
        self._wake = threading.Event()
        self._closed = False

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def workspace(self, api_key: str) -> Workspace:
        """The workspace of ``api_key``, created and seeded on first use. What follows a
        ``+`` names another key of the same workspace (``sandbox-acme+ci`` sees what
        ``sandbox-acme`` sees), as several keys of one Mistral workspace do."""
        owner = api_key.split("+", 1)[0]
        # Keyed by fingerprint so no key lingers in memory longer than its request.
        digest = fingerprint(owner)
        with self._lock:
            workspace = self._workspaces.get(digest)
            if workspace is None:
                workspace = Workspace(seed.inventory(owner, self.models))
                self._workspaces[digest] = workspace
            return workspace

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            if self.record_limit is not None and len(self.requests) > self.record_limit:
                del self.requests[: len(self.requests) - self.record_limit]
            self._recorded.notify_all()

    def nap(self, seconds: float) -> None:
        """Sleep inside a request (latency, hang); reset() and close() cut it short."""
        with self._lock:
            if self._closed or seconds <= 0:
                return
            wake = self._wake
        wake.wait(seconds)

    def close(self) -> None:
        """Wake every sleeping request, and let none sleep from now on (server stopping)."""
        with self._lock:
            self._closed = True
            self._wake.set()

    def wait_for_requests(self, count: int, *, timeout: float = 10) -> bool:
        """Block until the log holds ``count`` requests (they have arrived, and are being
        handled); False if ``timeout`` passed first. Lets tests act while a request hangs
        without sleeping to win the race."""
        with self._recorded:
            return self._recorded.wait_for(lambda: len(self.requests) >= count, timeout)

    def reset(self) -> None:
        """Forget every workspace (re-seeded on next use), clear faults and the log."""
        with self._lock:
            self._workspaces.clear()
            self.requests.clear()
            # Requests still sleeping in a hang belong to the old state: they are dropped.
            self.generation += 1
            self._wake.set()
            self._wake = threading.Event()
            self.peak_in_flight = self.in_flight
        self.faults.clear()
