"""The model pages: list, detail, inline edit, archive/unarchive and delete.

Every action works as an htmx request (a partial comes back) and as a plain form
post (a redirect comes back)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import (
    HttpResponseClientRedirect,
    HttpResponseClientRefresh,
    reswap,
    retarget,
    trigger_client_event,
)

from models_admin import forms, inventory, remote, services
from models_admin.audit import Action
from models_admin.http import AuthedRequest
from models_admin.views.common import actor, failure, is_partial, redirect, safe_next


@require_GET
def model_list(request: AuthedRequest) -> HttpResponse:
    filters = forms.ModelFilterForm(request.GET)
    query = filters.to_query()
    context: dict[str, object] = {"filters": filters, "query": query}
    try:
        inv = services.models_inventory(actor=actor(request), refresh="refresh" in request.GET)
    except services.MissingApiKey:
        context["no_key"] = True
    except services.UndecryptableApiKey as exc:
        context["no_key"] = True
        context["error"] = exc.message
    except remote.ModelsApiError as exc:
        context["error"] = exc.message
        context["key_link"] = isinstance(exc, remote.ApiAuthFailed)
    else:
        context["inventory"] = inv
        context["page"] = inventory.select(inv, query)
    template = (
        "models_admin/_model_table.html" if is_partial(request) else "models_admin/model_list.html"
    )
    return render(request, template, context)


def _card_page(request: AuthedRequest, model_id: str) -> HttpResponse | remote.ModelCard:
    """The fresh card, or the page to show instead (no key, gone, upstream failure)."""
    try:
        return services.model_get(actor=actor(request), model_id=model_id)
    except (services.MissingApiKey, services.UndecryptableApiKey) as exc:
        return failure(request, exc, back=request.get_full_path())
    except remote.ModelsApiError as exc:
        if is_partial(request):  # a form or dialog that can't open: say why, swap nothing
            return failure(request, exc, back=reverse("models_admin:model_list"))
        return _card_problem(request, model_id, exc)


def _card_problem(
    request: AuthedRequest, model_id: str, exc: remote.ModelsApiError
) -> HttpResponse:
    """The detail page saying why the model can't be shown (404 when it is gone)."""
    gone = isinstance(exc, remote.ModelNotFound)
    context = {
        "model_id": model_id,
        "error": exc.message,
        "gone": gone,
        "key_link": isinstance(exc, remote.ApiAuthFailed)
        and not isinstance(exc, remote.ApiForbidden),
    }
    return render(request, "models_admin/model_detail.html", context, status=404 if gone else 200)


@require_GET
def model_detail(request: AuthedRequest, model_id: str) -> HttpResponse:
    card = _card_page(request, model_id)
    if isinstance(card, HttpResponse):
        return card
    return render(request, "models_admin/model_detail.html", {"card": card, "model_id": model_id})


@require_http_methods(["GET", "POST"])
def model_edit(request: AuthedRequest, model_id: str) -> HttpResponse:
    """GET: the form, filled from a fresh retrieve. POST: save, or show the errors."""
    template = (
        "models_admin/_model_fields.html" if is_partial(request) else "models_admin/model_edit.html"
    )
    action = Action.MODEL_UPDATE if request.method == "POST" else ""
    services.authorize(
        actor(request), "models_admin.change_models", action=action, target_id=model_id
    )
    if request.method == "GET":
        card = _card_page(request, model_id)
        if isinstance(card, HttpResponse):
            return card
        form = forms.ModelEditForm.for_card(card.name, card.description)
        return render(request, template, {"card": card, "form": form, "model_id": model_id})

    form = forms.ModelEditForm(request.POST)
    context: dict[str, object] = {"form": form, "model_id": model_id}
    if form.is_valid():
        expected = form.cleaned_data["expected"]
        try:
            card = services.model_update(
                actor=actor(request),
                model_id=model_id,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                expected_name=expected["name"],
                expected_description=expected["description"],
            )
        except services.EditConflict as exc:
            # Show the current values and let the user decide again.
            fresh = forms.ModelEditForm.for_card(exc.current.name, exc.current.description)
            fresh.errors["__all__"] = fresh.error_class([exc.message])
            context.update(form=fresh, card=exc.current)
        except remote.ApiRejected as exc:
            for field, errors in exc.field_errors.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
            if not exc.field_errors:
                form.add_error(None, exc.message)
        except (services.ServiceError, remote.ModelsApiError) as exc:
            return failure(request, exc, back=reverse("models_admin:model_detail", args=[model_id]))
        else:
            messages.success(request, f"Saved {card.display_name}.")
            if not is_partial(request):
                return redirect(request, reverse("models_admin:model_detail", args=[model_id]))
            # The heading and the tab title show the name too: swap the whole detail.
            response = render(
                request, "models_admin/_model_detail.html", {"card": card, "model_id": model_id}
            )
            return retarget(reswap(response, "outerHTML"), "#model-detail")
    return render(request, template, context)


def _set_archived(request: AuthedRequest, model_id: str, *, archived: bool) -> HttpResponse:
    in_row = request.POST.get("view") == "row"
    back = safe_next(request, reverse("models_admin:model_detail", args=[model_id]))
    service = services.model_archive if archived else services.model_unarchive
    try:
        card = service(actor=actor(request), model_id=model_id)
    except (services.ServiceError, remote.ModelsApiError) as exc:
        return failure(request, exc, back=back, row=in_row)
    messages.success(request, f"{'Archived' if archived else 'Unarchived'} {card.display_name}.")
    if not is_partial(request):
        return redirect(request, back)
    if request.POST.get("view") == "dialog":
        # "Archive instead" in the delete dialog: the page behind it is out of date.
        return HttpResponseClientRefresh()
    if in_row:
        row = inventory.Inventory.build([card]).rows[0]
        response = render(request, "models_admin/_model_row.html", {"row": row})
    else:
        response = render(
            request, "models_admin/_model_detail.html", {"card": card, "model_id": model_id}
        )
    return response


@require_POST
def model_archive(request: AuthedRequest, model_id: str) -> HttpResponse:
    return _set_archived(request, model_id, archived=True)


@require_POST
def model_unarchive(request: AuthedRequest, model_id: str) -> HttpResponse:
    return _set_archived(request, model_id, archived=False)


@require_http_methods(["GET", "POST"])
def model_delete(request: AuthedRequest, model_id: str) -> HttpResponse:
    """GET: the confirmation (a dialog for htmx, a page otherwise). POST: delete."""
    # Refused here already (so a member's form is never validated), and recorded when posted.
    action = Action.MODEL_DELETE if request.method == "POST" else ""
    services.authorize(
        actor(request), "models_admin.delete_models", action=action, target_id=model_id
    )
    template = (
        "models_admin/_delete_dialog.html"
        if is_partial(request)
        else "models_admin/model_delete.html"
    )
    list_url = reverse("models_admin:model_list")
    # Where the delete was asked from: a list row, the detail page (in a dialog), or the page.
    view = (
        request.POST.get("view")
        or request.GET.get("view")
        or ("row" if is_partial(request) else "page")
    )
    if request.method == "GET":
        card = _card_page(request, model_id)
        if isinstance(card, HttpResponse):
            return card
        form = forms.ModelDeleteForm(model_id=model_id)
        context = {"card": card, "form": form, "model_id": model_id, "view": view}
        return render(request, template, context)

    form = forms.ModelDeleteForm(request.POST, model_id=model_id)
    context = {"form": form, "model_id": model_id, "card": None, "view": view}
    if form.is_valid():
        try:
            services.model_delete(
                actor=actor(request), model_id=model_id, reason=form.cleaned_data["reason"]
            )
        except remote.ModelNotFound as exc:
            messages.warning(request, f"{model_id} was already gone from Mistral. {exc.message}")
            return _deleted(request, model_id, list_url, view)
        except (services.ServiceError, remote.ModelsApiError) as exc:
            if not is_partial(request):
                return failure(request, exc, back=safe_next(request, list_url))
            # Keep the dialog open and say why; the row stays.
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Deleted {model_id}.")
            return _deleted(request, model_id, list_url, view)
    return render(request, template, context)


def _deleted(request: AuthedRequest, model_id: str, list_url: str, view: str) -> HttpResponse:
    if not is_partial(request):
        return redirect(request, list_url)
    if view != "row":
        return HttpResponseClientRedirect(list_url)
    response = HttpResponse("")
    return trigger_client_event(response, "modelDeleted", {"id": model_id})
