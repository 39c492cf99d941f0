"""The audit log pages (team admins and auditors): review, entry detail, deleted models, export."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from models_admin import audit_reports, forms, services
from models_admin.http import AuthedRequest
from models_admin.models import AuditEntry
from models_admin.views.common import actor, is_partial, requires


@require_GET
@requires("models_admin.view_auditentry")
def audit_list(request: AuthedRequest) -> HttpResponse:
    form = forms.AuditFilterForm(request.GET)
    filters = form.filters()
    page = audit_reports.page(
        audit_reports.search(filters),
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
    entry = get_object_or_404(AuditEntry, seq=seq)
    outcomes = list(entry.outcomes.order_by("seq")) if entry.kind == AuditEntry.Kind.ATTEMPT else []
    effective = outcomes[-1].outcome if outcomes else entry.outcome
    context = {
        "entry": entry,
        "attempt": entry.attempt,
        "outcomes": outcomes,
        "effective_outcome": effective,
        "card": (outcomes[-1].before if outcomes else None) or entry.before,
        "changes": (outcomes[-1].changes if outcomes and outcomes[-1].changes else entry.changes),
    }
    return render(request, "models_admin/audit_detail.html", context)


@require_GET
@requires("models_admin.view_auditentry")
def audit_deleted(request: AuthedRequest) -> HttpResponse:
    form = forms.AuditFilterForm(request.GET)
    form.is_valid()
    page = audit_reports.deleted_models(before=form.cleaned_data.get("before"))
    rows = [(entry, audit_reports.last_known_card(entry)) for entry in page.entries]
    return render(request, "models_admin/audit_deleted.html", {"page": page, "rows": rows})


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
