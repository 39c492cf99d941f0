"""Helpers every view module shares: the acting user, and the one place that turns a
failure (a ServiceError or a remote.ModelsApiError) into a response."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect, reswap

from models_admin import remote, services
from models_admin.audit import Actor
from models_admin.http import AuthedRequest


def actor(request: AuthedRequest) -> Actor:
    return Actor.from_request(request)


def is_partial(request: AuthedRequest) -> bool:
    """An htmx request for a fragment. Boosted requests and history restores (the Back
    button with htmx's history cache off) want whole pages."""
    return (
        bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request
    )


View = TypeVar("View", bound=Callable[..., HttpResponse])


def for_htmx(partial: str, *, target: str | None = None) -> Callable[[View], View]:
    """Render the view's page, or, for an htmx fragment request, the partial the page
    includes (django-htmx-patterns' ``for_htmx``). The view returns a TemplateResponse for
    the whole page; this swaps its template when the request wants the fragment (and, with
    ``target``, only when it targets the element with that id). Stack it to serve several
    targets from one view."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: AuthedRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = view(request, *args, **kwargs)
            if (
                isinstance(response, TemplateResponse)
                and not response.is_rendered
                and is_partial(request)
                and (target is None or request.htmx.target == target)
            ):
                response.template_name = partial
            return response

        return wrapped  # type: ignore[return-value]

    return decorator


def requires(permission: str, *, action: str = "") -> Callable[[View], View]:
    """Refuse (403) unless the user's role grants ``permission``. A refused POST of a
    change (``action`` given) is recorded in the audit log as denied, by the service
    layer's one check (services.authorize)."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: AuthedRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            services.authorize(
                actor(request),
                permission,
                action=action if request.method == "POST" else "",
                target_id=str(kwargs.get("model_id") or kwargs.get("user_id") or ""),
            )
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def redirect(request: AuthedRequest, url: str) -> HttpResponse:
    """A redirect that also works for htmx requests (which would swap the target page in)."""
    if is_partial(request):
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


def failure(
    request: AuthedRequest,
    exc: services.ServiceError | remote.ModelsApiError,
    *,
    back: str,
    row: bool = False,
) -> HttpResponse:
    """Show a failure as a readable message, never a 500.

    Missing or undecryptable keys lead to the key page. For htmx requests the message
    arrives as an out-of-band alert and nothing else is swapped, except that a row whose
    model is gone upstream (404) is removed. Full-page requests are redirected to
    ``back`` with the message."""
    if isinstance(exc, services.MissingApiKey | services.UndecryptableApiKey):
        messages.warning(request, exc.message)
        return redirect(request, f"{reverse('models_admin:api_key')}?next={back}")
    tags = (
        "api-key"
        if isinstance(exc, remote.ApiAuthFailed) and not isinstance(exc, remote.ApiForbidden)
        else ""
    )
    gone = isinstance(exc, remote.ModelNotFound)
    text = exc.message
    if gone and row:
        text = "That model no longer exists on Mistral, so it was removed from the list."
    messages.error(request, text, extra_tags=tags)
    if not is_partial(request):
        return HttpResponseRedirect(back)
    response = HttpResponse("")
    if not (gone and row):
        reswap(response, "none")
    return response
