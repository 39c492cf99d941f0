"""What the sandbox does with a request: the six operations of
../shared/reference/mistral-models-api.md (same paths, bodies, status codes and error
shapes) and the control endpoints. No sockets here: ``server`` does the HTTP.

Each ``/v1/...`` request goes through these steps, in this order:

 1. recorded in ``state.requests`` (key fingerprint only, never the key);
 1b. rate limit (``faults.rate_limit`` requests/s per key, a token bucket): over it,
    the answer is 429 with ``Retry-After``, ``retry-after-ms`` and ``x-ratelimit-*``
    (every answer carries ``x-ratelimit-*`` while a limit is set), and steps 4-10 are
    skipped;
 2. ``faults.latency_ms`` sleep;
 3. hang: sleep ``hang_s`` if ``hang_times`` is left (then carry on), or with
    ``hang_after`` do steps 4-10 first and sleep before answering;
 4. forced failure: ``fail_status`` if ``fail_times`` is left;
 5. random failure: ``error_status`` with probability ``error_rate``;
 6. malformed 200 body if ``malformed_times`` is left (nothing is changed);
 6b. (after step 10) ``drop_fields`` are left out of a 200 answer that matches;
 7. routing: an unknown path is the gateway's 404 ``no Route matched``, whatever the key;
 8. auth: 401 unless ``Authorization: Bearer sandbox-...``;
 9. method: 405 ``{"detail": "Method Not Allowed"}`` on a known path;
10. the operation itself. PATCH validates its body (422) before looking the model
    up (404), as FastAPI does.

Counters in 3, 4 and 6 are decremented atomically on arrival, and only by requests
whose ``"METHOD /raw/path"`` matches ``faults.match`` when that is set.

Sandbox semantics where the real API's are undocumented:

- ``GET /v1/models?provider=X`` keeps cards whose ``owned_by`` is X (``mistralai``:
  base models; the organisation id: fine-tuned ones); ``?model=X`` keeps cards whose
  id is X or whose aliases contain X. Empty values do not filter. Archived
  fine-tuned models are listed, with ``archived: true``.
- Archive and unarchive are idempotent. Base and unknown ids are 404 on the
  fine-tuning routes; deleting a base model is 403.
- PATCH: ``null`` clears a field, an absent key leaves it, unknown keys are ignored;
  ``name`` is at most 128 characters and ``description`` at most 2048.

Control endpoints under ``/_sandbox/`` (no auth, not recorded, never faulted):
``GET health``, ``GET|POST|DELETE faults``, ``POST reset``, ``GET requests``, and
``POST models`` (a card for the caller's workspace; missing card fields are filled
in with realistic defaults unless ``?raw=1``), and ``POST odd-cards`` (adds to the
caller's workspace one card of each contract breach the dashboard must survive:
``job: null``, no ``root``, ``archived: "yes"``, an unknown ``type`` with unknown
fields, and a card without an ``id``; answers the cards added).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

from models_admin.sandbox import seed
from models_admin.sandbox.faults import FaultPlan
from models_admin.sandbox.replies import (
    HTML,
    JSON,
    MAINTENANCE_PAGE,
    Reply,
    fault_reply,
    json_reply,
    method_not_allowed,
    no_route,
    not_found,
    object_error,
    rate_limited,
    text_reply,
    unauthorized,
    validation_error,
)
from models_admin.sandbox.state import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    BaseModelProtected,
    ModelMissing,
    RecordedRequest,
    SandboxState,
    Workspace,
    fingerprint,
)

KEY_PREFIX: Final = "sandbox-"
CONTROL_ROUTES: Final[dict[str, tuple[str, ...]]] = {
    "health": ("GET",),
    "faults": ("GET", "POST", "DELETE"),
    "reset": ("POST",),
    "requests": ("GET",),
    "models": ("POST",),
    "odd-cards": ("POST",),
}


@dataclass(frozen=True, slots=True)
class Incoming:
    """One request as the HTTP layer read it."""

    method: str
    path: str  # raw, still percent-encoded, without the query string
    query: dict[str, str]
    body: bytes
    key: str | None  # the bearer token, None without one
    peer: str = ""

    @property
    def sandbox_key(self) -> str | None:
        """The bearer key, if the sandbox accepts it (any key starting with ``sandbox-``)."""
        return self.key if self.key is not None and self.key.startswith(KEY_PREFIX) else None


@dataclass(frozen=True, slots=True)
class Route:
    kind: str  # "list", "model", "fine_tuned", "archive"
    model_id: str | None
    allowed: tuple[str, ...]


def match_route(raw_path: str) -> Route | None:
    """The API route of a raw path; the model id segment is percent-decoded."""
    parts = raw_path.split("/")
    # Split before decoding: an encoded "/" stays inside its segment (an unknown id).
    if parts[:3] == ["", "v1", "models"]:
        if len(parts) == 3:
            return Route("list", None, ("GET",))
        if len(parts) == 4 and parts[3]:
            return Route("model", unquote(parts[3]), ("GET", "DELETE"))
    if parts[:4] == ["", "v1", "fine_tuning", "models"] and len(parts) >= 5 and parts[4]:
        if len(parts) == 5:
            return Route("fine_tuned", unquote(parts[4]), ("PATCH",))
        if len(parts) == 6 and parts[5] == "archive":
            return Route("archive", unquote(parts[4]), ("POST", "DELETE"))
    return None


# ------------------------------------------------------------------------------ /v1


def serve_api(
    state: SandboxState, request: Incoming, sleep: Callable[[float], None]
) -> Reply | None:
    """Steps 1-10 for one ``/v1`` request; None when a reset dropped it mid-hang."""
    try:
        decoded: Any = json.loads(request.body) if request.body else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        decoded = None
    state.record(
        RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.query,
            json=decoded,
            key_fingerprint=fingerprint(request.key) if request.key is not None else None,
            peer=request.peer,
        )
    )
    admitted = state.faults.admit(fingerprint(request.key) if request.key is not None else "")
    if admitted is None or admitted[0]:
        plan = state.faults.plan(request.method, request.path)
    else:  # refused on arrival: no other fault is spent on it
        plan = FaultPlan(latency_s=state.faults.latency_ms / 1000)
    generation = state.generation
    sleep(plan.latency_s)
    if not plan.hang_after:
        sleep(plan.hang_s)
    if state.generation != generation:
        return None  # the state was reset while this request slept: drop it
    route = match_route(request.path)
    if admitted is not None and not admitted[0]:
        reply = rate_limited(admitted[1])
    elif plan.error_status is not None:
        reply = fault_reply(plan)
    elif plan.malformed is not None:
        reply = malformed_reply(plan.malformed, route)
    elif route is None:
        reply = no_route()
    elif (key := request.sandbox_key) is None:
        reply = unauthorized()
    elif request.method not in route.allowed:
        reply = method_not_allowed(route.allowed)
    else:
        reply = without_fields(operation(state.workspace(key), request, route), plan.drop_fields)
    if admitted is not None:
        for name, value in admitted[1].items():
            reply.headers.setdefault(name, value)
    if plan.hang_after:
        sleep(plan.hang_s)
    return reply


def without_fields(reply: Reply, names: tuple[str, ...]) -> Reply:
    """``reply`` with ``names`` left out of its object (or of each card of a list)."""
    if not names or reply.status != 200:
        return reply
    payload = json.loads(reply.body)
    items = payload.get("data") if payload.get("object") == "list" else [payload]
    for item in items if isinstance(items, list) else []:
        for name in names:
            item.pop(name, None)
    return json_reply(200, payload)


def malformed_reply(kind: str, route: Route | None) -> Reply:
    """A 200 whose body breaks the contract in the way ``kind`` names."""
    if kind == "html":
        return text_reply(200, MAINTENANCE_PAGE, content_type=HTML)
    listing = route is not None and route.kind == "list"
    if kind == "wrong_shape":
        if listing:
            return json_reply(200, {"object": "list", "data": "temporarily unavailable"})
        return json_reply(200, {"object": "model", "archived": "yes"})
    if listing:
        sample: Any = {"object": "list", "data": seed.base_cards()[:2]}
    else:
        model_id = route.model_id if route is not None else "open-mistral-7b"
        sample = {"id": model_id, "object": "model", "archived": False, "deleted": True}
    text = json.dumps(sample)
    return Reply(200, text[: len(text) // 2].encode(), JSON)


def operation(workspace: Workspace, request: Incoming, route: Route) -> Reply:
    """Step 10: one of the six operations on the caller's workspace."""
    model_id = route.model_id or ""
    try:
        if route.kind == "list":
            cards = workspace.list_cards(
                provider=request.query.get("provider"), model=request.query.get("model")
            )
            return json_reply(200, {"object": "list", "data": cards})
        if route.kind == "model" and request.method == "GET":
            return json_reply(200, workspace.retrieve(model_id))
        if route.kind == "model":
            return json_reply(200, workspace.delete(model_id))
        if route.kind == "fine_tuned":
            changes = parse_update(request.body)
            if isinstance(changes, list):
                return validation_error(changes)
            return json_reply(200, workspace.update(model_id, changes))
        return json_reply(200, workspace.set_archived(model_id, archived=request.method == "POST"))
    except ModelMissing:
        return not_found(model_id)
    except BaseModelProtected:
        return object_error(403, "Base models cannot be deleted")


def _pydantic_error(
    error_type: str, loc: list[str | int], msg: str, value: Any, ctx: dict[str, Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type, "loc": loc, "msg": msg, "input": value}
    if ctx is not None:
        error["ctx"] = ctx
    return error


def parse_update(body: bytes) -> dict[str, str | None] | list[dict[str, Any]]:
    """The changes of an UpdateModelRequest body, or FastAPI-style validation errors."""
    if not body.strip():
        return [_pydantic_error("missing", ["body"], "Field required", None)]
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        position = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "Invalid UTF-8"
        return [
            _pydantic_error(
                "json_invalid", ["body", position], "JSON decode error", {}, {"error": message}
            )
        ]
    if not isinstance(payload, dict):
        return [
            _pydantic_error(
                "model_attributes_type",
                ["body"],
                "Input should be a valid dictionary or object to extract fields from",
                payload,
            )
        ]
    errors: list[dict[str, Any]] = []
    changes: dict[str, str | None] = {}
    for name, limit in (("name", NAME_MAX_LENGTH), ("description", DESCRIPTION_MAX_LENGTH)):
        if name not in payload:
            continue
        value = payload[name]
        if value is not None and not isinstance(value, str):
            errors.append(
                _pydantic_error(
                    "string_type", ["body", name], "Input should be a valid string", value
                )
            )
        elif isinstance(value, str) and len(value) > limit:
            errors.append(
                _pydantic_error(
                    "string_too_long",
                    ["body", name],
                    f"String should have at most {limit} characters",
                    value,
                    {"max_length": limit},
                )
            )
        else:
            changes[name] = value
    return errors or changes


# ------------------------------------------------------------------------ /_sandbox


def serve_control(state: SandboxState, request: Incoming) -> Reply:
    """The control endpoints: not recorded, never faulted."""
    endpoint = request.path.rstrip("/").removeprefix("/_sandbox/")
    allowed = CONTROL_ROUTES.get(endpoint)
    if allowed is None:
        return json_reply(404, {"detail": "Not Found"})
    if request.method not in allowed:
        return method_not_allowed(allowed)
    if endpoint == "health":
        return json_reply(200, {"ok": True})
    if endpoint == "reset":
        state.reset()
        return json_reply(200, {"ok": True})
    if endpoint == "requests":
        return json_reply(200, [recorded.to_json() for recorded in list(state.requests)])
    if endpoint == "odd-cards":
        return _add_odd_cards(state, request)
    payload, problem = _json_object(request.body)
    if endpoint == "faults":
        if request.method == "DELETE":
            state.faults.clear()
        elif request.method == "POST":
            if payload is None:
                return json_reply(400, {"detail": problem})
            try:
                state.faults.set(**payload)
            except ValueError as exc:
                return json_reply(400, {"detail": str(exc)})
        return json_reply(200, state.faults.to_json())
    key = request.sandbox_key
    if key is None:
        return unauthorized()
    if payload is None:
        return json_reply(400, {"detail": problem})
    workspace = state.workspace(key)
    raw = request.query.get("raw") in {"1", "true"}
    card = payload if raw else complete_card(workspace, payload)
    try:
        workspace.put(card)
    except ValueError as exc:
        return json_reply(400, {"detail": str(exc)})
    return json_reply(200, card)


def _add_odd_cards(state: SandboxState, request: Incoming) -> Reply:
    key = request.sandbox_key
    if key is None:
        return unauthorized()
    workspace = state.workspace(key)
    cards = odd_cards(workspace)
    for card in cards:
        if "id" in card:
            workspace.put(card)
        else:
            workspace.put_without_id(card)
    return json_reply(200, cards)


def odd_cards(workspace: Workspace) -> list[dict[str, Any]]:
    """One card per contract breach (see the module docstring), with fresh ids."""

    def card(name: str, **changes: Any) -> dict[str, Any]:
        job = str(uuid.uuid4())
        model_id = f"ft:open-mistral-7b:{workspace.organization_hex}:20260101:{job[:8]}"
        return {**complete_card(workspace, {"id": model_id, "job": job, "name": name}), **changes}

    no_root, no_id = card("odd-no-root"), card("odd-no-id")
    del no_root["root"], no_id["id"]
    unknown = card("odd-unknown-type", type="voice-agent", voices=["alto"])
    unknown["id"] = f"voice-{unknown['job'][:8]}"
    return [
        card("odd-null-job", job=None),
        no_root,
        card("odd-archived-yes", archived="yes"),
        unknown,
        no_id,
    ]


def _json_object(body: bytes) -> tuple[dict[str, Any] | None, str]:
    try:
        payload = json.loads(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"body is not valid JSON: {exc}"
    if not isinstance(payload, dict):
        return None, "body must be a JSON object"
    return payload, ""


def complete_card(workspace: Workspace, partial: dict[str, Any]) -> dict[str, Any]:
    """A full card from a partial one: what demos post to ``/_sandbox/models``."""
    now = int(time.time())
    if partial.get("type", "fine-tuned") == "base":
        base_id = str(partial.get("id", "custom-base-model"))
        card = seed.base_card(base_id, name=base_id, created=now, flags={"completion_chat"})
    else:
        capabilities = partial.get("capabilities")
        classifier = str(partial.get("id", "")).startswith("ft:classifier:") or (
            isinstance(capabilities, dict) and capabilities.get("classification") is True
        )
        default_root = seed.CLASSIFIER_ROOTS[0] if classifier else seed.COMPLETION_ROOTS[0]
        created = partial.get("created", now)
        card = seed.fine_tuned_card(
            root=str(partial.get("root", default_root)),
            organization_id=workspace.organization_id,
            organization_hex=workspace.organization_hex,
            created=created if isinstance(created, int) else now,
            job=str(partial.get("job", uuid.uuid4())),
            classifier=classifier,
        )
    card.update(partial)
    return card
