"""A real OpenID Connect provider for the tests: ``oidc-provider-mock`` (authlib's
authorization server under Flask: discovery, authorize page, token, userinfo, JWKS,
RS256-signed ID tokens), served over HTTP on 127.0.0.1 in a thread.

Its login page asks for a subject and signs that user in. Tests set a user's claims
(groups included) through its own API (``PUT /users/<sub>``), as an administrator would
at a real provider. A thin WSGI layer in front records what the dashboard sent to the
token endpoint (to check the PKCE verifier) and can tamper with the next ID token.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import werkzeug.serving

with warnings.catch_warnings():
    # authlib warns about its own deprecated modules, which the provider imports (and
    # turns its warnings on when first imported: import it, then silence them).
    import authlib.deprecate  # type: ignore[import-untyped]

    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    import oidc_provider_mock  # type: ignore[import-untyped]

CLIENT_ID = "mistral-dashboard"
CLIENT_SECRET = "test-client-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_payload(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (to look at what the provider issued)."""
    return json.loads(_unb64(token.split(".")[1]))


class OidcProvider:
    """The provider, plus what the dashboard sent to its token endpoint."""

    def __init__(self) -> None:
        self._app = oidc_provider_mock.app(require_nonce=True)
        self.token_requests: list[dict[str, str]] = []
        self.issued_id_tokens: list[str] = []
        # Applied to the payload of the next ID token, keeping its signature.
        self.tamper_next_id_token: Callable[[dict[str, Any]], None] | None = None
        self._server = werkzeug.serving.make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> OidcProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def set_user(self, sub: str, **claims: Any) -> None:
        """Create or replace a user at the provider (its claims go into ID tokens)."""
        response = httpx.put(f"{self.url}/users/{sub}", json=claims)
        response.raise_for_status()

    def reset(self) -> None:
        self.token_requests.clear()
        self.issued_id_tokens.clear()
        self.tamper_next_id_token = None

    # ------------------------------------------------------------------ WSGI layer

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/oauth2/token":
            return self._app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        self.token_requests.append({k: v[0] for k, v in parse_qs(body.decode()).items()})
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return lambda data: None

        content = b"".join(self._app(environ, capture))
        content = self._rewrite_token_response(content)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(content)))])
        return [content]

    def _rewrite_token_response(self, content: bytes) -> bytes:
        try:
            data = json.loads(content)
        except ValueError:
            return content
        if "id_token" not in data:
            return content
        self.issued_id_tokens.append(data["id_token"])
        if self.tamper_next_id_token is not None:
            header, payload, signature = data["id_token"].split(".")
            claims = json.loads(_unb64(payload))
            self.tamper_next_id_token(claims)
            self.tamper_next_id_token = None
            data["id_token"] = ".".join([header, _b64(json.dumps(claims).encode()), signature])
        return json.dumps(data).encode()


@contextmanager
def running_provider() -> Iterator[OidcProvider]:
    with OidcProvider() as provider:
        yield provider


@pytest.fixture(scope="session")
def oidc_provider_server() -> Iterator[OidcProvider]:
    with running_provider() as provider:
        yield provider


ROLE_GROUPS = [
    ("team_admin", "ml-platform-admins"),
    ("member", "ml-users"),
    ("auditor", "ml-auditors"),
]


@pytest.fixture
def oidc_provider(oidc_provider_server: OidcProvider, settings) -> Iterator[OidcProvider]:
    """The provider, with the dashboard configured to sign in through it."""
    oidc_provider_server.reset()
    settings.OIDC_ISSUER = oidc_provider_server.url
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_PROVIDER_NAME = "Example SSO"
    settings.OIDC_ROLE_GROUPS = ROLE_GROUPS
    settings.OIDC_BREAK_GLASS_USERS = []
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "models_admin.oidc.ProviderBackend",
        "models_admin.oidc.LocalPasswordBackend",
    ]
    yield oidc_provider_server
    oidc_provider_server.reset()
