"""The audit log pages (team admins and auditors): review, entry detail, deleted models, export."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from models_admin import forms, services
from models_admin.http import AuthedRequest
from models_admin.models import AuditEntry
from models_admin.views.common import actor, is_partial, requires


@require_GET
@requires("models_admin.view_auditentry")
def audit_list(request: AuthedRequest) -> HttpResponse:
    form = forms.AuditFilterForm(request.GET)
    filters = form.filters()
    page = services.audit_list(
        actor=actor(request),
        filters=filters,
        before=form.cleaned_data.get("before"),
        after=form.cleaned_data.get("after"),
    )
    partial = is_partial(request)
    context = {"form": form, "filters": filters, "page": page, "oob_exports": partial}
    template = "models_admin/_audit_table.html" if partial else "models_admin/audit_list.html"
    return render(request, template, context)


@require_GET
@requires("models_admin.view_auditentry")
def audit_detail(request: AuthedRequest, seq: int) -> HttpResponse:
    try:
        detail = services.audit_detail(actor=actor(request), seq=seq)
    except AuditEntry.DoesNotExist:
        raise Http404("No such audit entry.") from None
    context = {
        "entry": detail.entry,
        "attempt": detail.attempt,
        "outcomes": detail.outcomes,
        "effective_outcome": detail.effective_outcome,
        "card": detail.card,
        "changes": detail.changes,
    }
    return render(request, "models_admin/audit_detail.html", context)


@require_GET
@requires("models_admin.view_auditentry")
def audit_deleted(request: AuthedRequest) -> HttpResponse:
    form = forms.AuditFilterForm(request.GET)
    form.is_valid()
    deleted = services.audit_deleted(actor=actor(request), before=form.cleaned_data.get("before"))
    context = {"page": deleted.page, "rows": deleted.rows}
    return render(request, "models_admin/audit_deleted.html", context)


@require_GET
@requires("models_admin.view_auditentry")
def audit_checkpoint(request: AuthedRequest) -> HttpResponse:
    """A signed checkpoint to keep away from the server (verify_audit_chain --checkpoint)."""
    checkpoint = services.audit_checkpoint(actor=actor(request))
    response = HttpResponse(checkpoint.to_line() + "\n", content_type="application/json")
    name = f"audit-checkpoint-{checkpoint.seq}.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def audit_export(request: AuthedRequest, fmt: str) -> StreamingHttpResponse:
    # The service checks the permission (and records a refused export).
    filters = forms.AuditFilterForm(request.GET).filters()
    lines = services.audit_export(actor=actor(request), filters=filters, fmt=fmt)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    content_type = (
        "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"
    )
    response = StreamingHttpResponse(lines, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
