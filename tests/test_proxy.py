"""The client behind an egress proxy: HTTP_PROXY / HTTPS_PROXY / SSL_CERT_FILE from the
environment, or the MISTRAL_API_PROXY setting. A small proxy on 127.0.0.1 (a thread)
records what passes and relays it to the sandbox, whatever host the client asked for:
``mistral.test`` cannot be reached any other way. For CONNECT it does what a
TLS-inspecting corporate proxy does: it answers TLS itself with its own certificate,
which the client trusts only through SSL_CERT_FILE."""

from __future__ import annotations

import datetime as dt
import socketserver
import ssl
import threading
from collections.abc import Iterator
from io import BufferedIOBase
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from models_admin import remote
from tests.test_remote import KEY, FakeTime

HOST = "mistral.test"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for HOST (its own issuer)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "proxy.pem", directory / "proxy.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Relay(socketserver.StreamRequestHandler):
    server: RecordingProxy

    def handle(self) -> None:
        line = self.rfile.readline().decode("latin-1").strip()
        if not line:
            return
        method, target, _ = line.split(" ", 2)
        self.server.seen.append((method, target))
        headers = self._headers(self.rfile)
        if method != "CONNECT":
            self._relay(self.rfile, self.wfile, method, target, headers)
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            tls = self.server.tls.wrap_socket(self.connection, server_side=True)
        except ssl.SSLError:
            return  # a client that does not trust this CA hangs up: what a test expects
        with tls:
            reader, writer = tls.makefile("rb"), tls.makefile("wb")
            while line := reader.readline().decode("latin-1").strip():
                method, path, _ = line.split(" ", 2)
                self._relay(reader, writer, method, path, self._headers(reader))

    @staticmethod
    def _headers(stream: BufferedIOBase) -> dict[str, str]:
        headers = {}
        while (line := stream.readline().decode("latin-1").strip()) != "":
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return headers

    def _relay(
        self,
        reader: BufferedIOBase,
        writer: BufferedIOBase,
        method: str,
        target: str,
        headers: dict[str, str],
    ) -> None:
        body = reader.read(int(headers.get("content-length") or 0))
        path = "/" + target.split("://", 1)[-1].split("/", 1)[-1] if "://" in target else target
        passed = {k: v for k, v in headers.items() if k in {"authorization", "content-type"}}
        answer = httpx.request(
            method, self.server.upstream + path, headers=passed, content=body, trust_env=False
        )
        writer.write(
            f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}\r\n"
            f"Content-Type: {answer.headers.get('content-type', 'text/plain')}\r\n"
            f"Content-Length: {len(answer.content)}\r\n\r\n".encode()
            + answer.content
        )
        writer.flush()


class RecordingProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: str, tls: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.upstream, self.tls = upstream, tls
        self.seen: list[tuple[str, str]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def proxy(sandbox, certificate) -> Iterator[RecordingProxy]:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*certificate)
    server = RecordingProxy(sandbox.url, tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture(autouse=True)
def no_ambient_proxy(monkeypatch, settings) -> None:
    """Whatever this machine's environment says about proxies and CAs, start from none."""
    for name in remote.PROXY_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    settings.MISTRAL_API_PROXY = ""


def api_at(url: str) -> remote.ModelsApi:
    # Generous timeouts: two hops and a TLS handshake on a busy machine; no retries.
    policy = remote.RetryPolicy(max_retries=0, sleep=FakeTime().sleep)
    return remote.ModelsApi(api_key=KEY, base_url=url, timeout=10, connect_timeout=10, retry=policy)


class TestEnvironmentProxy:
    def test_http_goes_through_http_proxy(self, monkeypatch, proxy, sandbox):
        monkeypatch.setenv("HTTP_PROXY", proxy.url)

        cards = api_at(f"http://{HOST}").list_models()

        assert cards
        assert proxy.seen == [("GET", f"http://{HOST}/v1/models")]
        assert [(r.method, r.path) for r in sandbox.state.requests] == [("GET", "/v1/models")]

    def test_https_tunnels_through_https_proxy_trusting_ssl_cert_file(
        self, monkeypatch, proxy, sandbox, certificate
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        model_id = next(c for c in sandbox.state.workspace(KEY).models)

        card = api_at(f"https://{HOST}").retrieve_model(model_id)

        assert card.id == model_id
        assert proxy.seen == [("CONNECT", f"{HOST}:443")]
        assert sandbox.state.requests[-1].path == f"/v1/models/{model_id}"

    def test_a_certificate_nobody_vouched_for_is_refused(self, monkeypatch, proxy, sandbox):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)

        with pytest.raises(remote.ApiUnavailable):
            api_at(f"https://{HOST}").list_models()

        assert proxy.seen == [("CONNECT", f"{HOST}:443")]
        assert sandbox.state.requests == []

    def test_loopback_goes_direct(self, monkeypatch, proxy, sandbox):
        monkeypatch.setenv("HTTP_PROXY", proxy.url)

        api_at(sandbox.url).list_models()

        assert proxy.seen == []
        assert len(sandbox.state.requests) == 1

    def test_no_proxy_is_honoured(self, monkeypatch, proxy, sandbox):
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", HOST)

        with pytest.raises(remote.ApiUnavailable):
            # Direct to a name that does not resolve: the proxy never sees it.
            api_at(f"http://{HOST}").list_models()

        assert proxy.seen == []


class TestSettingProxy:
    def test_mistral_api_proxy_wins_over_the_environment(
        self, monkeypatch, settings, proxy, sandbox
    ):
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        settings.MISTRAL_API_PROXY = proxy.url

        api_at(f"http://{HOST}").list_models()

        assert proxy.seen == [("GET", f"http://{HOST}/v1/models")]

    def test_it_applies_to_loopback_too(self, settings, proxy, sandbox):
        settings.MISTRAL_API_PROXY = proxy.url

        api_at(sandbox.url).list_models()

        assert proxy.seen == [("GET", f"{sandbox.url}/v1/models")]

    def test_the_pool_follows_the_configuration(self, settings, proxy):
        direct = remote.http_pool()
        settings.MISTRAL_API_PROXY = proxy.url

        proxied = remote.http_pool()

        assert proxied is not direct and remote.http_pool() is proxied
