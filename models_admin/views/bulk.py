"""Bulk actions: prepare (a draft job and its one confirmation), start, follow, retry."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from models_admin import bulk, forms, remote, services
from models_admin.http import AuthedRequest
from models_admin.models import BulkJob
from models_admin.views.common import actor, failure, is_partial, redirect


def _job(request: AuthedRequest, job_id: UUID) -> BulkJob:
    try:
        return bulk.bulk_job_get(actor=actor(request), job_id=job_id)
    except BulkJob.DoesNotExist:
        raise Http404("No such bulk job.") from None


def _render(
    request: AuthedRequest, job: BulkJob, form: forms.BulkStartForm | None = None
) -> HttpResponse:
    progress = bulk.bulk_job_progress(job)
    if job.state == BulkJob.State.DRAFT and form is None:
        form = forms.BulkStartForm(job=job, total=progress.total)
    context = {"job": job, "progress": progress, "form": form, "items": job.items.all()}
    template = (
        "models_admin/_bulk_job.html" if is_partial(request) else "models_admin/bulk_job.html"
    )
    response = render(request, template, context)
    if job.state == BulkJob.State.FINISHED and is_partial(request):
        trigger_client_event(response, "bulkFinished")
    return response


@require_POST
def bulk_prepare(request: AuthedRequest) -> HttpResponse:
    """The selection from the list → a draft job and its confirmation."""
    form = forms.BulkSelectForm(request.POST)
    list_url = reverse("models_admin:model_list")
    if not form.is_valid():
        messages.error(request, "Pick an action for the selected models.")
        return redirect(request, list_url)
    query = (
        forms.ModelFilterForm(request.POST).to_query()
        if form.cleaned_data["all_matching"]
        else None
    )
    try:
        job = bulk.bulk_job_create(
            actor=actor(request),
            action=form.cleaned_data["action"],
            model_ids=request.POST.getlist("ids"),
            query=query,
        )
    except (services.ServiceError, remote.ModelsApiError) as exc:
        return failure(request, exc, back=list_url)
    if not is_partial(request):
        return redirect(request, reverse("models_admin:bulk_job", args=[job.pk]))
    return _render(request, job)


@require_GET
def bulk_job(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    """The confirmation of a draft, or the progress and results of a started job."""
    return _render(request, _job(request, job_id))


@require_POST
def bulk_start(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    job = _job(request, job_id)
    form = forms.BulkStartForm(request.POST, job=job, total=job.items.count())
    if form.is_valid():
        try:
            bulk.bulk_job_start(
                actor=actor(request), job=job, reason=form.cleaned_data.get("reason") or ""
            )
        except services.ServiceError as exc:
            job.refresh_from_db()
            if job.state != BulkJob.State.DRAFT:  # started meanwhile (another tab, a double click)
                messages.error(request, exc.message)
                return _render(request, job)
            form.add_error(None, exc.message)
        else:
            job.refresh_from_db()
            if not is_partial(request):
                return redirect(request, reverse("models_admin:bulk_job", args=[job.pk]))
            return _render(request, job)
    return _render(request, job, form)


@require_POST
def bulk_retry(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    job = _job(request, job_id)
    try:
        retry = bulk.bulk_job_retry(actor=actor(request), job=job)
    except services.ServiceError as exc:
        messages.error(request, exc.message)
        return redirect(request, reverse("models_admin:bulk_job", args=[job.pk]))
    if not is_partial(request):
        return redirect(request, reverse("models_admin:bulk_job", args=[retry.pk]))
    retry.refresh_from_db()  # the runner started it: show its progress, not the draft
    return _render(request, retry)
