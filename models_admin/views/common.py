"""What every view module shares: the acting user; the one place that picks the page or
its partial (``for_htmx``); the view-level permission declaration (``requires``); one URL
served by a view per method (``by_method``); and the one place that turns a failure (a
ServiceError or a remote.ModelsApiError) into a response (``failure``: ``key_problem`` or
``upstream_error``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect, reswap

from models_admin import remote, services
from models_admin.audit import Actor
from models_admin.http import AuthedRequest


def actor(request: AuthedRequest) -> Actor:
    return Actor.from_request(request)


def is_partial(request: AuthedRequest) -> bool:
    """An htmx request for a fragment. History restores (the Back button with htmx's
    history cache off) want whole pages, and so do boosted links, unless they carry an
    ``hx-target`` (a boosted region: its links fetch the region itself)."""
    htmx = request.htmx
    return (
        bool(htmx)
        and not htmx.history_restore_request
        and (not htmx.boosted or htmx.target is not None)
    )


View = TypeVar("View", bound=Callable[..., HttpResponse])


def for_htmx(partial: str, *, target: str | None = None) -> Callable[[View], View]:
    """Render the view's page, or, for an htmx fragment request, the partial the page
    includes (django-htmx-patterns' ``for_htmx``). The view returns a TemplateResponse for
    the whole page; this swaps its template when the request wants the fragment (and, with
    ``target``, only when the response lands in the element with that id: the one it
    retargets to, or else the one the request targets). Stack it to serve several targets
    from one view."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: AuthedRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = view(request, *args, **kwargs)
            if (
                isinstance(response, TemplateResponse)
                and not response.is_rendered
                and is_partial(request)
                and (target is None or _lands_in(request, response) == target)
            ):
                response.template_name = partial
            return response

        return wrapped  # type: ignore[return-value]

    return decorator


def _lands_in(request: AuthedRequest, response: HttpResponse) -> str | None:
    retarget: str = response.get("HX-Retarget", "")
    return retarget.removeprefix("#") if retarget else request.htmx.target


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


def safe_next(request: HttpRequest, default: str, *, field: str = "next") -> str:
    """The local URL posted or passed as ``field``, else ``default``."""
    target = request.POST.get(field) or request.GET.get(field) or ""
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


def partial_or_redirect(request: AuthedRequest, url: str, partial: HttpResponse) -> HttpResponse:
    """After a change: the fragment that shows it for htmx, else a redirect (post/redirect/get)."""
    return partial if is_partial(request) else HttpResponseRedirect(url)


# The failures that send the user to the key page.
KEY_PROBLEMS = (services.MissingApiKey, services.UndecryptableApiKey)


def failure(
    request: AuthedRequest, exc: services.ServiceError | remote.ModelsApiError, *, back: str
) -> HttpResponse:
    """Show a failure as a readable message, never a 500."""
    if isinstance(exc, KEY_PROBLEMS):
        return key_problem(request, exc, back=back)
    return upstream_error(request, exc, back=back)


def key_problem(request: AuthedRequest, exc: services.ServiceError, *, back: str) -> HttpResponse:
    """No usable key: say why and lead to the key page, which then leads ``back``."""
    messages.warning(request, exc.message)
    return redirect(request, f"{reverse('models_admin:api_key')}?next={back}")


def upstream_error(
    request: AuthedRequest, exc: services.ServiceError | remote.ModelsApiError, *, back: str
) -> HttpResponse:
    """The message as an alert: out of band with nothing swapped (htmx), or on ``back``.
    A rejected key links to the key page."""
    messages.error(request, exc.message, extra_tags="api-key" if key_at_fault(exc) else "")
    return partial_or_redirect(request, back, reswap(HttpResponse(""), "none"))


def key_at_fault(exc: Exception) -> bool:
    """Whether Mistral refused the key itself, not just this action: link to the key page."""
    return isinstance(exc, remote.ApiAuthFailed) and not isinstance(exc, remote.ApiForbidden)


def by_method(*, get: View, post: View) -> Callable[..., HttpResponse]:
    """One URL served by one view per method: a form (GET) and what posting it does (POST)."""

    @require_http_methods(["GET", "POST"])
    def view(request: AuthedRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return (post if request.method == "POST" else get)(request, *args, **kwargs)

    return view
