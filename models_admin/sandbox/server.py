"""A stateful HTTP server that speaks Mistral's model-management API.

It serves the six operations of ../shared/reference/mistral-models-api.md with the
same paths, bodies, status codes and error shapes, over stdlib ``http.server``
(HTTP/1.1 keep-alive, Content-Length on every response, one daemon thread per
connection). Any bearer key starting with ``sandbox-`` is accepted and owns its
own seeded workspace (see ``seed``).

Each ``/v1/...`` request goes through these steps, in this order:

 1. recorded in ``state.requests`` (key fingerprint only, never the key);
 2. ``faults.latency_ms`` sleep;
 3. hang: sleep ``hang_s`` if ``hang_times`` is left (then carry on), or with
    ``hang_after`` do steps 4-10 first and sleep before answering;
 4. forced failure: ``fail_status`` if ``fail_times`` is left;
 5. random failure: ``error_status`` with probability ``error_rate``;
 6. malformed 200 body if ``malformed_times`` is left (nothing is changed);
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
in with realistic defaults unless ``?raw=1``).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

from models_admin.sandbox import seed
from models_admin.sandbox.state import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    BaseModelProtected,
    FaultPlan,
    ModelMissing,
    RecordedRequest,
    SandboxState,
    Workspace,
    fingerprint,
)

KEY_PREFIX: Final = "sandbox-"
MAX_BODY_BYTES: Final = 16 * 1024 * 1024
JSON: Final = "application/json"
# The real API sends this variant on some 422s; clients must not compare exactly.
JSON_UTF8: Final = "application/json; charset=utf-8"
TEXT: Final = "text/plain; charset=utf-8"
HTML: Final = "text/html; charset=utf-8"

GATEWAY_TEXTS: Final = {
    502: "upstream connect error or disconnect/reset before headers. reset reason: protocol error",
    503: "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    504: "upstream request timeout",
}
MAINTENANCE_PAGE: Final = (
    "<!DOCTYPE html>\n<html><head><title>Maintenance</title></head>"
    "<body><h1>We'll be back soon</h1><p>The API is undergoing maintenance.</p></body></html>\n"
)


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any, *, content_type: str = JSON) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Reply(status, body, content_type)


def text_reply(status: int, text: str, *, content_type: str = TEXT) -> Reply:
    return Reply(status, text.encode(), content_type)


def request_id() -> str:
    return secrets.token_hex(16)


def object_error(status: int, message: str, *, error_type: str = "invalid_request_error") -> Reply:
    return json_reply(
        status,
        {"object": "error", "message": message, "type": error_type, "param": None, "code": None},
    )


def not_found(model_id: str) -> Reply:
    return object_error(404, f"Model '{model_id}' not found")


def unauthorized() -> Reply:
    return json_reply(401, {"message": "Unauthorized", "request_id": request_id()})


def no_route() -> Reply:
    return json_reply(
        404, {"message": "no Route matched with those values", "request_id": request_id()}
    )


def method_not_allowed(allowed: tuple[str, ...]) -> Reply:
    reply = json_reply(405, {"detail": "Method Not Allowed"})
    reply.headers["Allow"] = ", ".join(allowed)
    return reply


def validation_error(errors: list[dict[str, Any]]) -> Reply:
    return json_reply(422, {"detail": errors}, content_type=JSON_UTF8)


def default_error(status: int) -> Reply:
    """The body the real API most plausibly sends for ``status`` (see the reference's Errors)."""
    if status == 401:
        return unauthorized()
    if status == 422:
        return validation_error(
            [
                {
                    "type": "value_error",
                    "loc": ["body"],
                    "msg": "Value error, the request could not be processed",
                    "input": None,
                    "ctx": {"error": "the request could not be processed"},
                }
            ]
        )
    if status == 429:
        return json_reply(
            429,
            {
                "object": "error",
                "message": "Rate limit exceeded",
                "type": "rate_limited",
                "param": None,
                "code": "1300",
                "raw_status_code": 429,
            },
        )
    if status in GATEWAY_TEXTS:
        return text_reply(status, GATEWAY_TEXTS[status])
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status >= 500:
        return json_reply(status, {"detail": phrase})
    return object_error(status, phrase)


def fault_reply(plan: FaultPlan) -> Reply:
    assert plan.error_status is not None  # noqa: S101 - callers check first
    body = plan.error_body
    if isinstance(body, dict | list):
        reply = json_reply(plan.error_status, body)
    elif isinstance(body, str):
        reply = text_reply(plan.error_status, body)
    else:
        reply = default_error(plan.error_status)
    if plan.retry_after is not None:
        reply.headers["Retry-After"] = plan.retry_after
    return reply


# ---------------------------------------------------------------------------- routing


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


# ------------------------------------------------------------------------- operations


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


def handle_operation(
    workspace: Workspace, method: str, route: Route, query: dict[str, str], body: bytes
) -> Reply:
    model_id = route.model_id or ""
    try:
        if route.kind == "list":
            cards = workspace.list_cards(provider=query.get("provider"), model=query.get("model"))
            return json_reply(200, {"object": "list", "data": cards})
        if route.kind == "model" and method == "GET":
            return json_reply(200, workspace.retrieve(model_id))
        if route.kind == "model":
            return json_reply(200, workspace.delete(model_id))
        if route.kind == "fine_tuned":
            changes = parse_update(body)
            if isinstance(changes, list):
                return validation_error(changes)
            return json_reply(200, workspace.update(model_id, changes))
        return json_reply(200, workspace.set_archived(model_id, archived=method == "POST"))
    except ModelMissing:
        return not_found(model_id)
    except BaseModelProtected:
        return object_error(403, "Base models cannot be deleted")


def complete_card(workspace: Workspace, partial: dict[str, Any]) -> dict[str, Any]:
    """A full card from a partial one: what demos post to ``/_sandbox/models``."""
    now = int(time.time())
    if partial.get("type", "fine-tuned") == "base":
        base_id = partial.get("id", "custom-base-model")
        card: dict[str, Any] = {
            "id": base_id,
            "object": "model",
            "created": now,
            "owned_by": "mistralai",
            "capabilities": seed.capabilities({"completion_chat"}),
            "name": base_id,
            "description": None,
            "max_context_length": 32768,
            "aliases": [],
            "deprecation": None,
            "deprecation_replacement_model": None,
            "default_model_temperature": None,
            "internal": False,
            "type": "base",
        }
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


# ---------------------------------------------------------------------------- server


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], state: SandboxState, access_log: TextIO | None
    ) -> None:
        self.state = state
        self.access_log = access_log
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mistral-sandbox/1.0"
    sys_version = ""
    server: _HTTPServer
    # Set by send_header(); typeshed does not declare it.
    _headers_buffer: list[bytes]

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log = self.server.access_log
        if log is not None:
            log.write(f"{datetime.now(UTC):%H:%M:%S} {format % args}\n")
            log.flush()

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = do_OPTIONS = do_GET

    # -- plumbing

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._send(text_reply(400, f"Bad request body: {exc}"))
            return
        target = urlsplit(self.path)
        path = target.path
        query = dict(parse_qsl(target.query, keep_blank_values=True))
        if path == "/v1" or path.startswith("/v1/"):
            self.server.state.enter()
            try:
                reply = self._api(path, query, body)
            finally:
                self.server.state.leave()
        elif path == "/_sandbox" or path.startswith("/_sandbox/"):
            reply = self._control(path, query, body)
        else:
            reply = no_route()
        if reply is None or self.server.stopping.is_set():
            # Stopped or reset mid-request (a hang cut short): drop it like a dying server would.
            self.close_connection = True
            return
        try:
            self._send(reply)
        except OSError:
            # The client gave up (e.g. it timed out during a hang): nothing to answer.
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise ValueError("too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY_BYTES:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        # Headers and body in one write: two small writes meet Nagle and delayed ACK
        # and cost ~40 ms per response on keep-alive connections.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(reply.body)
        self.flush_headers()

    def _bearer_key(self) -> str | None:
        scheme, _, key = self.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        return key.strip()

    def _sleep(self, seconds: float) -> None:
        # An Event rather than time.sleep, so stop() cuts hangs short.
        if seconds > 0:
            self.server.stopping.wait(seconds)

    # -- /v1

    def _api(self, path: str, query: dict[str, str], body: bytes) -> Reply | None:
        state = self.server.state
        key = self._bearer_key()
        try:
            decoded: Any = json.loads(body) if body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            decoded = None
        state.record(
            RecordedRequest(
                method=self.command,
                path=path,
                query=query,
                json=decoded,
                key_fingerprint=fingerprint(key) if key is not None else None,
                peer=f"{self.client_address[0]}:{self.client_address[1]}",
            )
        )
        plan = state.faults.plan(self.command, path)
        generation = state.generation
        self._sleep(plan.latency_s)
        if not plan.hang_after:
            self._sleep(plan.hang_s)
        if state.generation != generation:
            return None  # the state was reset while this request slept: drop it
        reply = self._answer(plan, path, query, body, key)
        if plan.hang_after:
            self._sleep(plan.hang_s)
        return reply

    def _answer(
        self, plan: FaultPlan, path: str, query: dict[str, str], body: bytes, key: str | None
    ) -> Reply:
        state = self.server.state
        route = match_route(path)
        if plan.error_status is not None:
            return fault_reply(plan)
        if plan.malformed is not None:
            return malformed_reply(plan.malformed, route)
        if route is None:
            return no_route()
        if key is None or not key.startswith(KEY_PREFIX):
            return unauthorized()
        if self.command not in route.allowed:
            return method_not_allowed(route.allowed)
        return handle_operation(state.workspace(key), self.command, route, query, body)

    # -- /_sandbox

    def _control(self, path: str, query: dict[str, str], body: bytes) -> Reply:
        state = self.server.state
        routes: dict[str, tuple[str, ...]] = {
            "/_sandbox/health": ("GET",),
            "/_sandbox/faults": ("GET", "POST", "DELETE"),
            "/_sandbox/reset": ("POST",),
            "/_sandbox/requests": ("GET",),
            "/_sandbox/models": ("POST",),
        }
        allowed = routes.get(path.rstrip("/"))
        if allowed is None:
            return json_reply(404, {"detail": "Not Found"})
        if self.command not in allowed:
            return method_not_allowed(allowed)
        endpoint = path.rstrip("/").removeprefix("/_sandbox/")
        if endpoint == "health":
            return json_reply(200, {"ok": True})
        if endpoint == "reset":
            state.reset()
            return json_reply(200, {"ok": True})
        if endpoint == "requests":
            return json_reply(200, [request.to_json() for request in list(state.requests)])
        payload, problem = _json_object(body)
        if endpoint == "faults":
            if self.command == "DELETE":
                state.faults.clear()
            elif self.command == "POST":
                if payload is None:
                    return json_reply(400, {"detail": problem})
                try:
                    state.faults.set(**payload)
                except ValueError as exc:
                    return json_reply(400, {"detail": str(exc)})
            return json_reply(200, state.faults.to_json())
        key = self._bearer_key()
        if key is None or not key.startswith(KEY_PREFIX):
            return unauthorized()
        if payload is None:
            return json_reply(400, {"detail": problem})
        workspace = state.workspace(key)
        card = payload if query.get("raw") in {"1", "true"} else complete_card(workspace, payload)
        try:
            workspace.put(card)
        except ValueError as exc:
            return json_reply(400, {"detail": str(exc)})
        return json_reply(200, card)


def _json_object(body: bytes) -> tuple[dict[str, Any] | None, str]:
    try:
        payload = json.loads(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"body is not valid JSON: {exc}"
    if not isinstance(payload, dict):
        return None, "body must be a JSON object"
    return payload, ""


class SandboxServer:
    """The sandbox API on ``host:port`` (0 = any free port), bound on construction.

    ``start()`` serves from a daemon thread (tests); ``serve_forever()`` blocks
    (the ``sandbox`` management command). Use as a context manager to start and stop.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: int = 40,
        latency_ms: int = 0,
        record_limit: int | None = None,
        access_log: TextIO | None = None,
    ) -> None:
        self.state = SandboxState(models=models, latency_ms=latency_ms, record_limit=record_limit)
        self._httpd = _HTTPServer((host, port), self.state, access_log)
        bound_host, bound_port = self._httpd.server_address[:2]
        shown = bound_host if isinstance(bound_host, str) else bound_host.decode()
        if ":" in shown:
            shown = f"[{shown}]"
        self.host = shown
        self.port = int(bound_port)
        self.url = f"http://{shown}:{self.port}"
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> SandboxServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                # A short poll keeps stop() fast; shutdown() waits for the next poll.
                kwargs={"poll_interval": 0.05},
                name=f"sandbox-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self._httpd.serve_forever()
        finally:
            self._close()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Idle keep-alive connections would otherwise keep their threads blocked in recv().
        with self._httpd.connections_lock:
            connections = list(self._httpd.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        # Only then wake hanging handlers, so none of them answers on the way out.
        self._httpd.stopping.set()
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SandboxServer {self.url}>"
