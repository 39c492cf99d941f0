"""The sandbox over HTTP: stdlib ``http.server`` with HTTP/1.1 keep-alive,
Content-Length on every response and one daemon thread per connection.

This module is plumbing only (reading bodies, writing replies, starting and
stopping); what a request does is in ``api``. Any bearer key starting with
``sandbox-`` is accepted and owns its own seeded workspace (see ``seed``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, TextIO
from urllib.parse import parse_qsl, urlsplit

from models_admin.sandbox import api
from models_admin.sandbox.replies import Reply, method_not_allowed, no_route, text_reply
from models_admin.sandbox.state import SandboxState

MAX_BODY_BYTES: Final = 16 * 1024 * 1024
SERVED_METHODS: Final = ("GET", "POST", "PATCH", "DELETE")


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

    def __getattr__(self, name: str) -> Any:
        # http.server answers a method without a do_* handler (TRACE, CONNECT, PROPFIND...)
        # with its own 501 HTML page; the API answers 405 JSON, as for any method it
        # does not serve on a route.
        if name.startswith("do_"):
            return self._refuse_method
        raise AttributeError(name)

    def _refuse_method(self) -> None:
        try:
            self._read_body()
        except ValueError:
            self.close_connection = True
        self._send(method_not_allowed(SERVED_METHODS))

    # -- plumbing

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._send(text_reply(400, f"Bad request body: {exc}"))
            return
        target = urlsplit(self.path)
        request = api.Incoming(
            method=self.command,
            path=target.path,
            query=dict(parse_qsl(target.query, keep_blank_values=True)),
            body=body,
            key=self._bearer_key(),
            peer=f"{self.client_address[0]}:{self.client_address[1]}",
        )
        state = self.server.state
        reply: Reply | None
        if request.path == "/v1" or request.path.startswith("/v1/"):
            state.enter()
            try:
                reply = api.serve_api(state, request, state.nap)
            finally:
                state.leave()
        elif request.path == "/_sandbox" or request.path.startswith("/_sandbox/"):
            reply = api.serve_control(state, request)
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
        rate_limit: float = 0.0,
        record_limit: int | None = None,
        access_log: TextIO | None = None,
    ) -> None:
        self.state = SandboxState(
            models=models, latency_ms=latency_ms, rate_limit=rate_limit, record_limit=record_limit
        )
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
        self.state.close()
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SandboxServer {self.url}>"
