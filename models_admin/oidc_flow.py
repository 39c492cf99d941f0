"""The provider's side of sign-in with OpenID Connect (see models_admin.oidc): the
discovery document, mozilla-django-oidc's backend and views with our checks. Imported
only when used (models_admin.oidc names these as its own), so that a web worker of an
install without single sign-on never loads mozilla-django-oidc, PyJWT and requests."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import jwt
import requests
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from models_admin import access
from models_admin.oidc import (
    ProviderUnavailable,
    Refused,
    enabled,
    member_from_provider,
    refused,
)

# The logger of models_admin.oidc, as before the split: logging settings and alerts name it.
logger = logging.getLogger("models_admin.oidc")

DISCOVERY_SECONDS = 3600
_discovered: dict[str, tuple[float, dict[str, Any]]] = {}


def provider_config() -> dict[str, Any]:
    """The issuer's discovery document, kept for an hour. Raises ProviderUnavailable."""
    issuer: str = settings.OIDC_ISSUER
    cached = _discovered.get(issuer)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    try:
        response = requests.get(
            f"{issuer}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT
        )
        response.raise_for_status()
        config: dict[str, Any] = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(f"discovery failed: {exc}") from exc
    # OpenID Connect Discovery 1.0, section 4.3: the document must name the same issuer.
    if config.get("issuer") != issuer:
        raise ProviderUnavailable(f"discovery names issuer {config.get('issuer')!r}")
    if not all(config.get(key) for key in ("authorization_endpoint", "token_endpoint", "jwks_uri")):
        raise ProviderUnavailable("discovery lacks an authorization, token or JWKS endpoint")
    _discovered[issuer] = (time.monotonic() + DISCOVERY_SECONDS, config)
    return config


# --------------------------------------------------------------------------- backend


class ProviderBackend(access.CachedAccess, OIDCAuthenticationBackend):  # type: ignore[misc]
    """mozilla-django-oidc's backend with discovered endpoints, the ID token's audience
    and issuer checked, and our rules for who comes in (``member_from_provider``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The library reads fixed endpoint settings here; ours are discovered when a
        # sign-in needs them, so that get_user() (every request) never calls the provider.
        self.UserModel = User
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None

    # The library's attribute names.
    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:
        return str(provider_config()["token_endpoint"])

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:
        return str(provider_config()["jwks_uri"])

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str | None:
        endpoint = provider_config().get("userinfo_endpoint")
        return str(endpoint) if endpoint else None

    def retrieve_matching_jwk(self, token: str) -> jwt.PyJWK:
        # The library insists on a "kid" header; a provider with a single key may omit it.
        header = jwt.get_unverified_header(token)
        response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        keys = [
            key
            for key in response.json().get("keys", [])
            if key.get("use", "sig") == "sig"
            and key.get("alg", header.get("alg")) == header.get("alg")
            and ("kid" not in header or key.get("kid") == header["kid"])
        ]
        if len(keys) != 1:
            raise SuspiciousOperation("No single key of the provider matches the ID token.")
        return jwt.PyJWK(keys[0])

    def get_payload_data(self, token: str, key: Any) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=60,
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}") from exc
        return payload

    def get_or_create_user(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> User | None:
        userinfo: dict[str, Any] = {}
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = self.get_userinfo(access_token, id_token, payload)
        try:
            # OpenID Connect Core 1.0, 5.3.2: userinfo must be about the ID token's subject.
            if userinfo and userinfo.get("sub") != payload.get("sub"):
                raise Refused("unverified")
            # The signed ID token's claims win; userinfo fills in the rest.
            return member_from_provider(claims={**userinfo, **payload}, request=self.request)
        except Refused as refusal:
            self.request.oidc_refusal = refusal
            logger.warning("OIDC sign-in refused (%s) for %r", refusal.reason, refusal.username)
            return None

    def get_user(self, user_id: int) -> User | None:
        # The library's get_user skips this check: without it a deactivated user's
        # session would go on.
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None


# --------------------------------------------------------------------------- views


@method_decorator(login_not_required, name="dispatch")
class AuthenticateView(OIDCAuthenticationRequestView):  # type: ignore[misc]
    """Sends the browser to the provider (with state, nonce and a PKCE challenge)."""

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_config()["authorization_endpoint"]
        except ProviderUnavailable as exc:
            logger.warning("OIDC provider unavailable: %s", exc)
            return refused(request, "unavailable")
        return cast(HttpResponse, super().get(request))


@method_decorator(login_not_required, name="dispatch")
class CallbackView(OIDCAuthenticationCallbackView):  # type: ignore[misc]
    """Where the provider sends the browser back: checks state, trades the code (with
    the PKCE verifier) for tokens, verifies the ID token, signs the user in."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404
        try:
            return cast(HttpResponse, super().get(request))
        except SuspiciousOperation as exc:
            logger.warning("OIDC sign-in refused: %s", exc)
            return refused(request, "unverified")
        except (requests.RequestException, ProviderUnavailable) as exc:
            logger.warning("OIDC sign-in failed at the provider: %s", exc)
            response = getattr(exc, "response", None)
            # A 4xx is the provider refusing the exchange (a code used twice, say).
            answered = response is not None and response.status_code < 500
            return refused(request, "failed" if answered else "unavailable")

    def login_failure(self) -> HttpResponse:
        refusal: Refused | None = getattr(self.request, "oidc_refusal", None)
        if refusal is None:
            return refused(self.request, "failed")
        return refused(self.request, refusal.reason, refusal.username)
