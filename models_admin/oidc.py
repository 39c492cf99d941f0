"""Sign-in with the company's identity provider (OpenID Connect), roles from its groups.

Built on mozilla-django-oidc rather than django-allauth: it is a plain Django
authentication backend plus two views, so Django's own login, sessions, django-axes,
LoginRequiredMiddleware and our roles keep working unchanged, with no new models, tables
or sign-up pages. It runs the authorization code flow with PKCE, keeps state and nonce
in the session and checks both on the way back, and verifies the ID token's signature
against the provider's published keys (JWKS). Two things it leaves to us are added
here: endpoints from the issuer's discovery document (it wants fixed URLs) and the
audience and issuer checks of the ID token (PyJWT does them; mozilla-django-oidc 5
switches the audience check off).

Who may come in, and as what, is decided by ``member_from_provider``:

- the user name is the ``OIDC_USERNAME_CLAIM`` claim (``preferred_username`` by default);
- the role is the first ``OIDC_ROLE_GROUPS`` pair whose group is in the
  ``OIDC_GROUPS_CLAIM`` claim, applied at every sign-in and audited like the Team page's
  changes; a user in none of the groups is refused and no account is created;
- a deactivated user stays out, and a break-glass account (``OIDC_BREAK_GLASS_USERS``)
  or a superuser signs in only with its local password, never through the provider.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any, cast

import jwt
import requests
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.contrib.auth.views import LoginView
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from models_admin import access, audit, roles, signals

if TYPE_CHECKING:
    from models_admin.http import AuthedRequest

logger = logging.getLogger(__name__)

Action = audit.Action

# --------------------------------------------------------------------------- provider

DISCOVERY_SECONDS = 3600
_discovered: dict[str, tuple[float, dict[str, Any]]] = {}


class ProviderUnavailable(Exception):
    """The identity provider did not answer, or its discovery document is unusable."""


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


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


# --------------------------------------------------------------------------- claims


def claim(claims: dict[str, Any], name: str) -> Any:
    """A claim by name, or by a dotted path into nested claims (``realm_access.roles``)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def groups_of(claims: dict[str, Any]) -> list[str]:
    """The user's groups: a list claim, or a single string (Google's ``hd``)."""
    value = claim(claims, settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def role_for(groups: list[str]) -> tuple[roles.Role, str] | None:
    """The first OIDC_ROLE_GROUPS pair whose group the user is in: (role, group)."""
    for role, group in settings.OIDC_ROLE_GROUPS:
        if group in groups:
            return roles.Role(role), group
    return None


# --------------------------------------------------------------------------- service


@dataclasses.dataclass(eq=False)
class Refused(Exception):
    """A sign-in through the provider that is turned away; ``reason`` picks the page text."""

    reason: str
    username: str = ""


def _username(claims: dict[str, Any]) -> str:
    value = claim(claims, settings.OIDC_USERNAME_CLAIM)
    if not isinstance(value, str) or not value or len(value) > 150:
        raise Refused("no_username")
    try:
        UnicodeUsernameValidator()(value)
    except ValidationError:
        raise Refused("no_username", value[:150]) from None
    return value


def member_from_provider(*, claims: dict[str, Any], request: HttpRequest) -> User:
    """The user the verified claims sign in: created on the first sign-in (no password),
    its role set from its groups at every sign-in. Creation and role changes are audited.

    Raises Refused (nothing is created or changed then)."""
    username = _username(claims)
    if username in settings.OIDC_BREAK_GLASS_USERS:
        raise Refused("break_glass", username)
    existing = User.objects.filter(username=username).first()
    if existing is not None and not existing.is_active:
        raise Refused("deactivated", username)
    # A superuser is a local administrator: a provider that lets people pick their user
    # name must not hand them one.
    if existing is not None and existing.is_superuser:
        raise Refused("break_glass", username)
    mapped = role_for(groups_of(claims))
    if mapped is None:
        raise Refused("no_role", username)
    role, group = mapped
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    actor = audit.Actor.from_request(cast("AuthedRequest", request))
    details = {"source": "identity provider", "issuer": settings.OIDC_ISSUER, "group": group}
    # The change and its audit entry commit together, or neither does.
    with transaction.atomic(), signals.recorded_by_service():
        user, created = User.objects.get_or_create(
            username=username, defaults={"email": (email or "")[:254]}
        )
        actor = dataclasses.replace(actor, user=user)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            roles.set_role(user, role)
            audit.event(
                actor=actor,
                action=Action.MEMBER_ADD,
                target_id=username,
                target_name=user.email,
                changes={"role": [None, role.value]},
                details=details,
            )
        elif (old := roles.role_of(user)) != role:
            roles.set_role(user, role)
            audit.event(
                actor=actor,
                action=Action.MEMBER_ROLE,
                target_id=username,
                changes={"role": [old.value if old else None, role.value]},
                details=details,
            )
    return user


# --------------------------------------------------------------------------- backends


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


class LocalPasswordBackend(access.CachedAccess):
    """Django's password sign-in; with OIDC on, only for the break-glass accounts."""

    def user_can_authenticate(self, user: User | AnonymousUser | None) -> bool:
        if enabled() and user and user.get_username() not in settings.OIDC_BREAK_GLASS_USERS:
            return False
        return super().user_can_authenticate(user)


def exempt_from_axes(request: HttpRequest, credentials: dict[str, Any] | None) -> bool:
    """AXES_WHITELIST_CALLABLE: django-axes counts password guesses per user name and
    address. A refused provider sign-in is no guess (the provider throttles its own
    logins) and has no user name here: counting it would lock everyone behind one
    office address out of single sign-on."""
    return request.path == reverse("oidc_authentication_callback")


# --------------------------------------------------------------------------- views

REFUSALS: dict[str, tuple[int, str]] = {
    "no_role": (
        403,
        "Your account is not in any of the groups that give access to this dashboard.",
    ),
    "deactivated": (403, "This account has been deactivated here by a team admin."),
    "break_glass": (403, "This is a local administrator account: it signs in with its password."),
    "no_username": (403, "The identity provider did not send a usable user name."),
    "unverified": (400, "The answer from the identity provider could not be verified."),
    "unavailable": (502, "The identity provider did not answer."),
    "failed": (400, "Signing in through the identity provider did not complete."),
}


def refused(request: HttpRequest, reason: str, username: str = "") -> HttpResponse:
    status, message = REFUSALS.get(reason, REFUSALS["failed"])
    groups = sorted({group for _, group in settings.OIDC_ROLE_GROUPS})
    context = {"reason": reason, "message": message, "username": username, "groups": groups}
    return TemplateResponse(request, "registration/oidc_refused.html", context, status=status)


class SignInView(LoginView):
    """Django's sign-in page, offering the provider when OIDC is on. The password form
    is then shown only when break-glass accounts are configured."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["oidc_enabled"] = enabled()
        context["oidc_provider_name"] = settings.OIDC_PROVIDER_NAME
        context["password_sign_in"] = not enabled() or bool(settings.OIDC_BREAK_GLASS_USERS)
        return context


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


urlpatterns = [
    path("authenticate/", AuthenticateView.as_view(), name="oidc_authentication_init"),
    path("callback/", CallbackView.as_view(), name="oidc_authentication_callback"),
]
