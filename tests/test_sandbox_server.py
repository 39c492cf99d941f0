"""The sandbox's HTTP plumbing (``sandbox/server.py``): how it reads bodies (chunked,
Content-Length, too large), answers HEAD and unknown methods, logs, binds IPv6, and
starts and stops. Raw sockets where httpx would refuse to send the malformed request."""

from __future__ import annotations

import io
import socket

import httpx
import pytest

from models_admin.sandbox import SandboxServer
from models_admin.sandbox.server import MAX_BODY_BYTES

KEY = "sandbox-alice"
AUTH = {"Authorization": f"Bearer {KEY}"}


def raw(server: SandboxServer, request: bytes) -> bytes:
    """Send bytes as they are; return everything the server answers before it closes."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def first_model(sandbox: SandboxServer) -> str:
    cards = httpx.get(f"{sandbox.url}/v1/models", headers=AUTH, timeout=5).json()["data"]
    return next(card["id"] for card in cards if card["type"] == "fine-tuned")


class TestRequestBodies:
    def test_it_reads_a_chunked_body(self, sandbox):
        model = first_model(sandbox)
        body = [b'{"name": ', b'"renamed-in-chunks"}']

        response = httpx.patch(
            f"{sandbox.url}/v1/fine_tuning/models/{model}",
            content=iter(body),  # an iterator: httpx sends Transfer-Encoding: chunked
            headers={**AUTH, "Content-Type": "application/json"},
            timeout=5,
        )

        assert response.status_code == 200
        assert response.json()["name"] == "renamed-in-chunks"
        assert sandbox.state.requests[-1].json == {"name": "renamed-in-chunks"}

    def test_it_refuses_a_chunked_body_over_the_limit_and_closes(self, sandbox):
        size = MAX_BODY_BYTES + 1
        request = (
            b"PATCH /v1/fine_tuning/models/x HTTP/1.1\r\nHost: sandbox\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + f"{size:x}\r\n".encode()
        )

        answer = raw(sandbox, request)

        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"Bad request body: too large" in answer
        assert sandbox.state.requests == []  # nothing reached the API

    @pytest.mark.parametrize("length", ["-1", str(MAX_BODY_BYTES + 1)])
    def test_it_refuses_a_bad_content_length_and_closes(self, sandbox, length):
        request = (
            f"POST /v1/models HTTP/1.1\r\nHost: sandbox\r\nContent-Length: {length}\r\n\r\n"
        ).encode()

        answer = raw(sandbox, request)

        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"Bad request body: bad Content-Length" in answer
        assert sandbox.state.requests == []

    def test_an_unserved_method_with_a_bad_body_is_refused_and_closed(self, sandbox):
        request = b"TRACE /v1/models HTTP/1.1\r\nHost: sandbox\r\nContent-Length: -1\r\n\r\n"

        answer = raw(sandbox, request)  # returns only once the server closes

        assert answer.startswith(b"HTTP/1.1 405 ")
        assert b"Allow: GET, POST, PATCH, DELETE" in answer


class TestResponses:
    def test_head_is_refused_like_any_unserved_method_and_carries_no_body(self, sandbox):
        put = httpx.request("PUT", f"{sandbox.url}/v1/models", headers=AUTH, timeout=5)

        head = httpx.head(f"{sandbox.url}/v1/models", headers=AUTH, timeout=5)

        assert head.status_code == put.status_code == 405
        assert head.headers["Allow"] == put.headers["Allow"] == "GET"
        assert head.headers["Content-Length"] == str(len(put.content)) != "0"
        assert head.content == b""


class TestServer:
    def test_the_access_log_has_one_line_per_request(self):
        log = io.StringIO()
        with SandboxServer(models=1, access_log=log) as server:
            httpx.get(f"{server.url}/v1/models", headers=AUTH, timeout=5)
            httpx.get(f"{server.url}/nowhere", timeout=5)

        lines = log.getvalue().splitlines()
        assert len(lines) == 2
        assert '"GET /v1/models HTTP/1.1" 200' in lines[0]
        assert '"GET /nowhere HTTP/1.1" 404' in lines[1]

    def test_it_serves_on_ipv6_with_a_bracketed_url(self):
        try:
            server = SandboxServer("::1", models=1)
        except OSError:
            pytest.skip("no IPv6 loopback here")

        with server:
            response = httpx.get(f"{server.url}/v1/models", headers=AUTH, timeout=5)

        assert server.url == f"http://[::1]:{server.port}"
        assert response.status_code == 200

    def test_start_twice_serves_once_and_stop_twice_is_harmless(self):
        server = SandboxServer(models=1)

        assert server.start() is server.start()
        assert httpx.get(f"{server.url}/v1/models", headers=AUTH, timeout=5).status_code == 200
        server.stop()
        server.stop()

        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/v1/models", headers=AUTH, timeout=5)
        assert repr(server) == f"<SandboxServer {server.url}>"

    def test_a_server_never_started_stops_cleanly(self):
        server = SandboxServer(models=1)
        port = server.port

        server.stop()

        with socket.socket() as s:  # the port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
