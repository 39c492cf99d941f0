"""Presentation helpers for model cards."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django import template
from django.http import QueryDict
from django.urls import get_script_prefix, reverse
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS

from models_admin.inventory import ModelQuery
from models_admin.remote import Capabilities, ModelCard
from models_admin.roles import Role

register = template.Library()

_CAPABILITY_LABELS = {
    "completion_chat": "chat",
    "completion_fim": "fill-in-the-middle",
    "function_calling": "function calling",
    "fine_tuning": "fine-tunable",
    "ocr": "OCR",
}


_ID_PLACEHOLDER = "model-id-placeholder"


@functools.lru_cache(maxsize=32)
def _model_url_parts(name: str, script_prefix: str) -> tuple[str, str]:
    head, tail = reverse(f"models_admin:{name}", args=[_ID_PLACEHOLDER]).split(_ID_PLACEHOLDER)
    return head, tail


@register.simple_tag
def model_url(name: str, model_id: str) -> str:
    """``{% url 'models_admin:<name>' model_id %}`` for the model pages, without resolving
    the URL pattern again for every row (the list renders five such links per row).
    Quoted as reverse() quotes; an id the URL pattern would refuse gets a link that
    404s instead of a NoReverseMatch."""
    head, tail = _model_url_parts(name, get_script_prefix())
    return head + quote(model_id, safe=RFC3986_SUBDELIMS + "~:@") + tail


@register.filter
def capability_label(flag: str) -> str:
    return _CAPABILITY_LABELS.get(flag, flag.replace("_", " "))


@register.filter
def role_label(value: str) -> str:
    """A role as people say it ("team_admin" → "Team admin"); unknown values as they are."""
    return Role(value).label if value in Role.values else value


@register.filter
def type_label(card: ModelCard) -> str:
    if card.is_fine_tuned:
        return "Fine-tuned"
    if card.is_base:
        return "Base"
    return card.type


@register.filter
def card_fields(card: ModelCard) -> list[tuple[str, Any, str]]:
    """Every field of the card, as (label, value, kind) for the detail page, in the
    reference's order, then any field the API added that the dashboard doesn't know."""
    rows: list[tuple[str, Any, str]] = []
    for f in dataclasses.fields(card):
        if f.name == "extra":
            continue
        rows.append(_field_row(f.name, getattr(card, f.name)))
    for name, value in card.extra:
        rows.append(_field_row(name, value))
    if card.created is not None:
        rows.insert(
            next(i for i, row in enumerate(rows) if row[0] == "created") + 1,
            (
                "created (UTC)",
                card.created_at.strftime("%Y-%m-%d %H:%M:%S") if card.created_at else "",
                "text",
            ),
        )
    return rows


def _field_row(name: str, value: Any) -> tuple[str, Any, str]:
    if value is None:
        return name, None, "none"
    if isinstance(value, Capabilities):
        return name, [capability_label(flag) for flag in value.ordered], "list"
    if isinstance(value, tuple):
        return name, list(value), "list"
    if isinstance(value, bool):
        return name, "true" if value else "false", "text"
    if isinstance(value, datetime):
        return name, value.isoformat(), "text"
    if isinstance(value, Mapping | list):
        return name, json.dumps(value, indent=2, sort_keys=True, default=str), "json"
    if name in {
        "id",
        "job",
        "root",
        "owned_by",
        "deprecation_replacement_model",
        "billing_model_name",
    }:
        return name, value, "code"
    return name, value, "text"


@register.simple_tag(takes_context=True)
def sort_link(context: template.Context, field: str, label: str, query: ModelQuery) -> str:
    """A column header that sorts by ``field``, toggling the direction."""
    current = query.sort
    descending = current == f"-{field}"
    active = current.lstrip("-") == field
    if active:
        target = field if descending else f"-{field}"
    else:  # newest first; names and ids A to Z
        target = f"-{field}" if field == "created" else field
    params = QueryDict(mutable=True)
    params.update(context["request"].GET)
    params["sort"] = target
    params.pop("page", None)
    params.pop("refresh", None)
    url = f"{reverse('models_admin:model_list')}?{params.urlencode()}"
    arrow = (" ↓" if descending else " ↑") if active else ""
    return format_html(
        '<a href="{}" hx-get="{}" hx-target="#model-table" hx-swap="outerHTML" hx-push-url="true">{}{}</a>',
        url,
        url,
        label,
        arrow,
    )
