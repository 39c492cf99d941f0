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
import functools
import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from models_admin import access, audit, roles, signals

if TYPE_CHECKING:
    from models_admin.http import AuthedRequest

logger = logging.getLogger(__name__)

Action = audit.Action

# --------------------------------------------------------------------------- provider


class ProviderUnavailable(Exception):
    """The identity provider did not answer, or its discovery document is unusable."""


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


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


# The provider's side (mozilla-django-oidc, PyJWT, requests: about 8 MB in each web
# worker) lives in models_admin.oidc_flow and is imported only when it is used: a
# sign-in through the provider, or the backend named in AUTHENTICATION_BACKENDS (so
# only when OIDC is on). These names read as this module's, as they always did
# (settings and sessions name "models_admin.oidc.ProviderBackend").
_FLOW_NAMES = frozenset(
    {"ProviderBackend", "AuthenticateView", "CallbackView", "provider_config", "DISCOVERY_SECONDS"}
)


def __getattr__(name: str) -> Any:
    if name in _FLOW_NAMES:
        return getattr(importlib.import_module("models_admin.oidc_flow"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _flow_view(name: str) -> Callable[..., HttpResponse]:
    return cast("Callable[..., HttpResponse]", __getattr__(name).as_view())


def _lazy_view(name: str) -> Callable[..., HttpResponse]:
    """The view of oidc_flow's ``name`` class, imported on its first request. Public,
    as the class is (its own dispatch is marked login_not_required too)."""

    @login_not_required
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return _flow_view(name)(request, *args, **kwargs)

    return view


urlpatterns = [
    path("authenticate/", _lazy_view("AuthenticateView"), name="oidc_authentication_init"),
    path("callback/", _lazy_view("CallbackView"), name="oidc_authentication_callback"),
]
