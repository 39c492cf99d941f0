"""Bulk actions: prepare (a draft job and its one confirmation), start, follow, retry."""

from __future__ import annotations

from urllib.parse import urlencode
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from models_admin import bulk, forms, remote, services
from models_admin.http import AuthedRequest
from models_admin.models import BulkJob
from models_admin.views.common import (
    actor,
    failure,
    for_htmx,
    partial_or_redirect,
    redirect,
    safe_next,
)


def _job(request: AuthedRequest, job_id: UUID) -> BulkJob:
    try:
        return bulk.bulk_job_get(actor=actor(request), job_id=job_id)
    except BulkJob.DoesNotExist:
        raise Http404("No such bulk job.") from None


def _back(request: AuthedRequest) -> str:
    """The list as the user left it (its filters in ``back``), for "Back to the models"."""
    list_url = reverse("models_admin:model_list")
    back = safe_next(request, list_url, field="back")
    return back if back.split("?")[0] == list_url else list_url


def _job_url(request: AuthedRequest, job: BulkJob) -> str:
    back = _back(request)
    query = f"?{urlencode({'back': back})}" if "?" in back else ""
    return reverse("models_admin:bulk_job", args=[job.pk]) + query


def _page(
    request: AuthedRequest, job: BulkJob, form: forms.BulkStartForm | None = None
) -> TemplateResponse:
    """The job's page (for_htmx turns it into the dialog's partial). A finished job tells
    the list to reload (``bulkFinished``)."""
    progress = bulk.bulk_job_progress(job)
    if job.state == BulkJob.State.DRAFT and form is None:
        form = forms.BulkStartForm(job=job, total=progress.total)
    context = {
        "job": job,
        "progress": progress,
        "form": form,
        "items": job.items.all(),
        "back_url": _back(request),
    }
    response = TemplateResponse(request, "models_admin/bulk_job.html", context)
    if job.state == BulkJob.State.FINISHED:
        trigger_client_event(response, "bulkFinished")
    return response


@require_POST
@for_htmx("models_admin/_bulk_job.html")
def bulk_prepare(request: AuthedRequest) -> HttpResponse:
    """The selection from the list → a draft job and its confirmation."""
    form = forms.BulkSelectForm(request.POST)
    list_url = reverse("models_admin:model_list")
    if not form.is_valid():
        messages.error(request, "Pick an action for the selected models.")
        return redirect(request, list_url)
    filters = forms.ModelFilterForm(request.POST)
    try:
        job = bulk.bulk_job_create(
            actor=actor(request),
            action=form.cleaned_data["action"],
            model_ids=request.POST.getlist("ids"),
            query=filters.to_query() if form.cleaned_data["all_matching"] else None,
        )
    except (services.ServiceError, remote.ModelsApiError) as exc:
        return failure(request, exc, back=list_url)
    return partial_or_redirect(request, _job_url(request, job), _page(request, job))


@require_GET
@for_htmx("models_admin/_bulk_job.html")
def bulk_job(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    """The confirmation of a draft, or the progress and results of a started job."""
    return _page(request, _job(request, job_id))


@require_POST
@for_htmx("models_admin/_bulk_job.html")
def bulk_start(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    job = _job(request, job_id)
    form = forms.BulkStartForm(request.POST, job=job, total=job.items.count())
    if not form.is_valid():
        return _page(request, job, form)
    try:
        bulk.bulk_job_start(
            actor=actor(request), job=job, reason=form.cleaned_data.get("reason") or ""
        )
    except services.ServiceError as exc:
        job.refresh_from_db()
        if job.state == BulkJob.State.DRAFT:
            form.add_error(None, exc.message)
            return _page(request, job, form)
        messages.error(request, exc.message)  # started meanwhile (another tab, a double click)
        return _page(request, job)
    job.refresh_from_db()
    return partial_or_redirect(request, _job_url(request, job), _page(request, job))


@require_POST
@for_htmx("models_admin/_bulk_job.html")
def bulk_retry(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    job = _job(request, job_id)
    try:
        retry = bulk.bulk_job_retry(actor=actor(request), job=job)
    except services.ServiceError as exc:
        messages.error(request, exc.message)
        return redirect(request, _job_url(request, job))
    retry.refresh_from_db()  # the runner started it: show its progress, not the draft
    return partial_or_redirect(request, _job_url(request, retry), _page(request, retry))
