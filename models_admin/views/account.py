"""The user's own API key, and the team page (team admins)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from models_admin import forms, remote, roles, services
from models_admin.http import AuthedRequest
from models_admin.views.common import actor, for_htmx, redirect, requires, safe_next


@sensitive_post_parameters("api_key")
@require_http_methods(["GET", "POST"])
@for_htmx("models_admin/_api_key_panel.html")
def api_key(request: AuthedRequest) -> HttpResponse:
    """Add or replace the user's key; a rejected key is never stored."""
    next_url = safe_next(request, reverse("models_admin:model_list"))
    form = forms.ApiKeyForm(request.POST or None)
    if form.is_bound and form.is_valid() and _save_key(request, form):
        return redirect(request, next_url)
    credential = services.credential_get(user=request.user)
    context = {
        "credential": credential,
        "decryptable": credential.is_decryptable if credential else False,
        "form": form,
        "offer_unverified": form.offer_unverified,
        "next": next_url,
    }
    return TemplateResponse(request, "models_admin/api_key.html", context)


def _save_key(request: AuthedRequest, form: forms.ApiKeyForm) -> bool:
    """Store the form's key, checked with Mistral unless the user ticked not to."""
    verify = not form.cleaned_data["save_unverified"]
    try:
        services.credential_save(
            actor=actor(request), api_key=form.cleaned_data["api_key"], verify=verify
        )
    except remote.ModelsApiError as exc:
        form.refuse(exc)
        return False
    saved = "API key saved." if verify else "API key saved without checking it with Mistral."
    messages.success(request, saved)
    return True


@require_POST
def api_key_remove(request: AuthedRequest) -> HttpResponse:
    if services.credential_remove(actor=actor(request)):
        messages.success(request, "API key removed.")
    return redirect(request, reverse("models_admin:api_key"))


@require_GET
@requires("models_admin.manage_team")
def team(request: AuthedRequest) -> HttpResponse:
    return _team_page(request, forms.AddMemberForm())


def _team_page(
    request: AuthedRequest, form: forms.AddMemberForm, *, new_link: tuple[User, str] | None = None
) -> HttpResponse:
    context = {
        "rows": services.team_members(actor=actor(request)),
        "form": form,
        "role_choices": roles.Role.choices,
        "new_link": new_link,
        "link_hours": settings.PASSWORD_LINK_HOURS,
    }
    return render(request, "models_admin/team.html", context)


@sensitive_post_parameters("password")
@require_POST
@requires("models_admin.manage_team")
def team_add(request: AuthedRequest) -> HttpResponse:
    form = forms.AddMemberForm(request.POST)
    if not form.is_valid():
        return _team_page(request, form)
    data = form.cleaned_data
    member = services.member_add(
        actor=actor(request),
        username=data["username"],
        email=data["email"],
        role=roles.Role(data["role"]),
        password=data["password"] or None,
    )
    if data["password"]:
        messages.success(request, f"Added {member.username}. Give them their initial password.")
        return redirect(request, reverse("models_admin:team"))
    link = request.build_absolute_uri(
        services.member_password_link(actor=actor(request), member=member)
    )
    messages.success(
        request, f"Added {member.username}. Hand them the set-password link below; it works once."
    )
    return _team_page(request, forms.AddMemberForm(), new_link=(member, link))


@require_POST
@requires("models_admin.manage_team")
def team_role(request: AuthedRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(User, pk=user_id)
    form = forms.RoleForm(request.POST)
    if form.is_valid():
        try:
            services.member_set_role(
                actor=actor(request), member=member, role=roles.Role(form.cleaned_data["role"])
            )
        except services.ServiceError as exc:
            messages.error(request, exc.message)
        else:
            label = roles.Role(form.cleaned_data["role"]).label.lower()
            article = "an" if label[0] in "aeiou" else "a"
            messages.success(request, f"{member.username} is now {article} {label}.")
    else:
        messages.error(request, "Pick one of the roles.")
    return redirect(request, reverse("models_admin:team"))


@require_POST
@requires("models_admin.manage_team")
def team_active(request: AuthedRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(User, pk=user_id)
    active = request.POST.get("active") == "1"
    try:
        services.member_set_active(actor=actor(request), member=member, active=active)
    except services.ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"{member.username} {'can sign in again' if active else 'is deactivated'}."
        )
    return redirect(request, reverse("models_admin:team"))


@require_POST
@requires("models_admin.manage_team")
def team_password_link(request: AuthedRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(User, pk=user_id)
    link = request.build_absolute_uri(
        services.member_password_link(actor=actor(request), member=member)
    )
    return _team_page(request, forms.AddMemberForm(), new_link=(member, link))
