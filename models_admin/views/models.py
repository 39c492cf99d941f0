"""The model pages: list, detail, inline edit, rename from the list, archive/unarchive
and delete.

One view per action and response shape: the URL says what comes back (``model_archive``
answers the detail, ``model_row_archive`` a list row), ``for_htmx`` picks the page or its
partial, and a plain form post gets a redirect."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

from django.contrib import messages
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget, trigger_client_event

from models_admin import forms, inventory, remote, services
from models_admin.audit import Action
from models_admin.http import AuthedRequest
from models_admin.views.common import (
    KEY_PROBLEMS,
    actor,
    failure,
    for_htmx,
    is_partial,
    key_at_fault,
    key_problem,
    partial_or_redirect,
    requires,
    safe_next,
    upstream_error,
)

BROWSE = "models_admin.browse_models"
CHANGE = "models_admin.change_models"
DELETE = "models_admin.delete_models"
GONE_FROM_LIST = "That model no longer exists on Mistral, so it was removed from the list."


def _list_url() -> str:
    return reverse("models_admin:model_list")


def _detail_url(model_id: str) -> str:
    return reverse("models_admin:model_detail", args=[model_id])


# --------------------------------------------------------------------------- list and detail


@require_GET
@requires(BROWSE)
@for_htmx("models_admin/_model_table.html")
def model_list(request: AuthedRequest) -> HttpResponse:
    inv, context = _inventory(request)
    filters = forms.ModelFilterForm(request.GET, inventory=inv)
    query = filters.to_query()
    if inv is not None:
        context.update(inventory=inv, page=inventory.select(inv, query))
    context.update(filters=filters, query=query)
    return TemplateResponse(request, "models_admin/model_list.html", context)


def _inventory(request: AuthedRequest) -> tuple[inventory.Inventory | None, dict[str, object]]:
    """The user's models, or None and what the list says instead."""
    try:
        inv = services.models_inventory(actor=actor(request), refresh="refresh" in request.GET)
    except services.MissingApiKey:
        return None, {"no_key": True}
    except services.UndecryptableApiKey as exc:
        return None, {"no_key": True, "error": exc.message}
    except remote.ModelsApiError as exc:
        return None, {"error": exc.message, "key_link": isinstance(exc, remote.ApiAuthFailed)}
    return inv, {}


@require_GET
@requires(BROWSE)
@for_htmx("models_admin/_model_fields.html", target="model-fields")
def model_detail(request: AuthedRequest, model_id: str) -> HttpResponse:
    """The model's page; its name-and-description section alone for that section's
    Cancel button."""
    card = _card(request, model_id)
    if isinstance(card, HttpResponse):
        return card
    return _detail(request, model_id, card, "models_admin/model_detail.html")


def _detail(
    request: AuthedRequest, model_id: str, card: remote.ModelCard, template: str
) -> TemplateResponse:
    context = {"card": card, "model_id": model_id, "history": _history(request, model_id)}
    return TemplateResponse(request, template, context)


def _history(request: AuthedRequest, model_id: str) -> Callable[[], object]:
    """The model's history, read only if the template shows it (the full page does)."""
    return functools.partial(services.model_history, actor=actor(request), model_id=model_id)


def _card(request: AuthedRequest, model_id: str) -> remote.ModelCard | HttpResponse:
    """The fresh card, or the response to give instead (no key, gone, upstream failure)."""
    try:
        return services.model_get(actor=actor(request), model_id=model_id)
    except KEY_PROBLEMS as exc:
        return key_problem(request, exc, back=request.get_full_path())
    except remote.ModelsApiError as exc:
        if is_partial(request):  # a form or dialog that can't open: say why, swap nothing
            return upstream_error(request, exc, back=_list_url())
        return _card_problem(request, model_id, exc)


def _card_or_none(request: AuthedRequest, model_id: str) -> remote.ModelCard | None:
    """The card for a summary that can do without it."""
    try:
        return services.model_get(actor=actor(request), model_id=model_id)
    except (services.ServiceError, remote.ModelsApiError):
        return None


def _card_problem(
    request: AuthedRequest, model_id: str, exc: remote.ModelsApiError
) -> HttpResponse:
    """The detail page saying why the model can't be shown (404 when it is gone)."""
    gone = isinstance(exc, remote.ModelNotFound)
    context = {
        "model_id": model_id,
        "error": exc.message,
        "gone": gone,
        "key_link": key_at_fault(exc),
        "history": _history(request, model_id),
    }
    status = 404 if gone else 200
    return TemplateResponse(request, "models_admin/model_detail.html", context, status=status)


# --------------------------------------------------------------------------- edit


@require_GET
@requires(CHANGE)
@for_htmx("models_admin/_model_fields.html")
def model_edit_form(request: AuthedRequest, model_id: str) -> HttpResponse:
    """The form, filled from a fresh retrieve."""
    card = _card(request, model_id)
    if isinstance(card, HttpResponse):
        return card
    form = forms.ModelEditForm.for_card(card.name, card.description)
    return _edit_page(request, model_id, form, card)


def _form_page(
    request: AuthedRequest,
    template: str,
    model_id: str,
    form: forms.ModelEditForm | forms.ModelDeleteForm,
    card: remote.ModelCard | None = None,
) -> TemplateResponse:
    """A model's form page (its partial for htmx, by the view's for_htmx)."""
    context = {"card": card, "form": form, "model_id": model_id}
    return TemplateResponse(request, f"models_admin/{template}", context)


def _edit_page(
    request: AuthedRequest,
    model_id: str,
    form: forms.ModelEditForm,
    card: remote.ModelCard | None = None,
) -> TemplateResponse:
    return _form_page(request, "model_edit.html", model_id, form, card)


@require_POST
@requires(CHANGE, action=Action.MODEL_UPDATE)
@for_htmx("models_admin/_model_fields.html", target="model-fields")
@for_htmx("models_admin/_model_detail.html", target="model-detail")
def model_edit(request: AuthedRequest, model_id: str) -> HttpResponse:
    """Save, or show the form again with its errors. Saved, the whole detail comes back:
    its heading and the tab title show the name too."""
    form = forms.ModelEditForm(request.POST)
    again = lambda form, card=None: _edit_page(request, model_id, form, card)  # noqa: E731
    card = _update(request, model_id, form, again, back=_detail_url(model_id))
    if isinstance(card, HttpResponse):
        return card
    messages.success(request, f"Saved {card.display_name}.")
    page = _detail(request, model_id, card, "models_admin/model_detail.html")
    return partial_or_redirect(
        request, _detail_url(model_id), retarget(reswap(page, "outerHTML"), "#model-detail")
    )


FormAgain = Callable[..., HttpResponse]


def _update(
    request: AuthedRequest, model_id: str, form: forms.ModelEditForm, again: FormAgain, *, back: str
) -> remote.FineTunedModelCard | HttpResponse:
    """Save a valid form (the card saved), or the response to give instead: ``again`` (the
    form with its errors, or with the current values after a conflict) or a failure."""
    if not form.is_valid():
        return again(form)
    try:
        return services.model_update(actor=actor(request), model_id=model_id, **form.changes())
    except services.EditConflict as exc:  # show the current values; the user decides again
        return again(type(form).conflicting(exc), exc.current)
    except remote.ApiRejected as exc:
        form.add_upstream_errors(exc)
        return again(form)
    except (services.ServiceError, remote.ModelsApiError) as exc:
        return failure(request, exc, back=back)


# --------------------------------------------------------------------------- list rows


def _row(request: AuthedRequest, card: remote.ModelCard) -> TemplateResponse:
    row = inventory.Inventory.build([card]).rows[0]
    return TemplateResponse(request, "models_admin/_model_row.html", {"row": row})


@require_GET
@requires(BROWSE)
def model_row(request: AuthedRequest, model_id: str) -> HttpResponse:
    """One list row, fresh: what a row form's Cancel puts back."""
    card = _card(request, model_id)
    if isinstance(card, HttpResponse):
        return card
    return partial_or_redirect(request, _list_url(), _row(request, card))


def _rename_row(
    request: AuthedRequest, model_id: str, form: forms.RenameForm, card: object = None
) -> HttpResponse:
    """The row with its rename form (its fields' ids unique on the list)."""
    form.auto_id = f"rename-{hashlib.sha256(model_id.encode()).hexdigest()[:10]}-%s"
    context = {"form": form, "model_id": model_id, "card": card}
    response = TemplateResponse(request, "models_admin/_model_row_rename.html", context)
    return partial_or_redirect(
        request, reverse("models_admin:model_edit", args=[model_id]), response
    )


@require_GET
@requires(CHANGE)
def model_row_rename_form(request: AuthedRequest, model_id: str) -> HttpResponse:
    """A list row turned into a rename form (without JavaScript: the edit page)."""
    card = _card(request, model_id)
    if isinstance(card, HttpResponse):
        return card
    return _rename_row(request, model_id, forms.RenameForm.for_card(card.name, card.description))


@require_POST
@requires(CHANGE, action=Action.MODEL_UPDATE)
def model_row_rename(request: AuthedRequest, model_id: str) -> HttpResponse:
    """Rename from the list: the row comes back, renamed (or the form, saying why not)."""
    form = forms.RenameForm(request.POST)
    again = lambda form, card=None: _rename_row(request, model_id, form, card)  # noqa: E731
    card = _update(request, model_id, form, again, back=_list_url())
    if isinstance(card, HttpResponse):
        return card
    messages.success(request, f"Renamed to {card.display_name}.")
    return partial_or_redirect(request, _list_url(), _row(request, card))


# --------------------------------------------------------------------------- archive


def _set_archived(request: AuthedRequest, model_id: str, *, archived: bool) -> remote.ModelCard:
    service = services.model_archive if archived else services.model_unarchive
    card = service(actor=actor(request), model_id=model_id)
    messages.success(request, f"{'Archived' if archived else 'Unarchived'} {card.display_name}.")
    return card


def _archive_in_detail(request: AuthedRequest, model_id: str, *, archived: bool) -> HttpResponse:
    back = safe_next(request, _detail_url(model_id))
    try:
        card = _set_archived(request, model_id, archived=archived)
    except (services.ServiceError, remote.ModelsApiError) as exc:
        return failure(request, exc, back=back)
    detail = _detail(request, model_id, card, "models_admin/_model_detail.html")
    return partial_or_redirect(request, back, detail)


def _archive_in_row(request: AuthedRequest, model_id: str, *, archived: bool) -> HttpResponse:
    back = safe_next(request, _list_url())
    try:
        card = _set_archived(request, model_id, archived=archived)
    except remote.ModelNotFound:  # the empty answer removes the row
        messages.error(request, GONE_FROM_LIST)
        return partial_or_redirect(request, back, HttpResponse(""))
    except (services.ServiceError, remote.ModelsApiError) as exc:
        return failure(request, exc, back=back)
    return partial_or_redirect(request, back, _row(request, card))


@require_POST
@requires(CHANGE, action=Action.MODEL_ARCHIVE)
def model_archive(request: AuthedRequest, model_id: str) -> HttpResponse:
    """From the detail page (the detail comes back) or a plain form post (a redirect)."""
    return _archive_in_detail(request, model_id, archived=True)


@require_POST
@requires(CHANGE, action=Action.MODEL_UNARCHIVE)
def model_unarchive(request: AuthedRequest, model_id: str) -> HttpResponse:
    return _archive_in_detail(request, model_id, archived=False)


@require_POST
@requires(CHANGE, action=Action.MODEL_ARCHIVE)
def model_row_archive(request: AuthedRequest, model_id: str) -> HttpResponse:
    """From a list row: the row comes back (or goes, if the model is gone)."""
    return _archive_in_row(request, model_id, archived=True)


@require_POST
@requires(CHANGE, action=Action.MODEL_UNARCHIVE)
def model_row_unarchive(request: AuthedRequest, model_id: str) -> HttpResponse:
    return _archive_in_row(request, model_id, archived=False)


# --------------------------------------------------------------------------- delete


@require_GET
@requires(DELETE)
@for_htmx("models_admin/_delete_dialog.html")
def model_delete_form(request: AuthedRequest, model_id: str) -> HttpResponse:
    """The confirmation (a dialog for htmx, a page otherwise) for both delete URLs: its
    form posts back to the URL it came from."""
    card = _card(request, model_id)
    if isinstance(card, HttpResponse):
        return card
    form = forms.ModelDeleteForm(model_id=model_id, initial={"name": card.display_name})
    return _delete_page(request, model_id, form, card)


def _delete_page(
    request: AuthedRequest,
    model_id: str,
    form: forms.ModelDeleteForm,
    card: remote.ModelCard | None = None,
) -> TemplateResponse:
    return _form_page(request, "model_delete.html", model_id, form, card)


@require_POST
@requires(DELETE, action=Action.MODEL_DELETE)
@for_htmx("models_admin/_delete_dialog.html")
def model_delete(request: AuthedRequest, model_id: str) -> HttpResponse:
    """From the detail page's dialog or the delete page: on to the list."""
    return _delete(request, model_id, done=HttpResponseClientRedirect(_list_url()))


@require_POST
@requires(DELETE, action=Action.MODEL_DELETE)
@for_htmx("models_admin/_delete_dialog.html")
def model_row_delete(request: AuthedRequest, model_id: str) -> HttpResponse:
    """From a list row's dialog: the dialog closes and the row goes (``modelDeleted``)."""
    deleted = trigger_client_event(HttpResponse(""), "modelDeleted", {"id": model_id})
    return _delete(request, model_id, done=deleted)


def _delete(request: AuthedRequest, model_id: str, *, done: HttpResponse) -> HttpResponse:
    """Delete once confirmed; else the confirmation again, saying why (the row stays)."""
    form = forms.ModelDeleteForm(request.POST, model_id=model_id)
    if not form.is_valid():  # the summary again too: the id to type, what is lost
        return _delete_page(request, model_id, form, _card_or_none(request, model_id))
    try:
        services.model_delete(
            actor=actor(request), model_id=model_id, reason=form.cleaned_data["reason"]
        )
    except remote.ModelNotFound as exc:
        messages.warning(request, f"{model_id} was already gone from Mistral. {exc.message}")
    except KEY_PROBLEMS as exc:
        return key_problem(request, exc, back=request.get_full_path())
    except (services.ServiceError, remote.ModelsApiError) as exc:
        form.add_error(None, exc.message)
        return _delete_page(request, model_id, form, _card_or_none(request, model_id))
    else:
        messages.success(request, f"Deleted {form.shown_name()}.")
    return partial_or_redirect(request, _list_url(), done)
