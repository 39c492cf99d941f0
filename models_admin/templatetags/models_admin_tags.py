"""Presentation helpers for model cards."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django import template
from django.template.context import Context
from django.utils.safestring import SafeString, mark_safe

from models_admin import fragments
from models_admin import rows as row_markup
from models_admin.inventory import ModelQuery, ModelRow
from models_admin.remote import Capabilities, ModelCard
from models_admin.roles import Role

register = template.Library()
register.tag("shared_fragment", fragments.shared_fragment)

register.simple_tag(row_markup.model_url, name="model_url")
register.filter("capability_label", row_markup.capability_label)


@register.filter
def role_label(value: str) -> str:
    """A role as people say it ("team_admin" → "Team admin"); unknown values as they are."""
    return Role(value).label if value in Role.values else value


type_label = register.filter("type_label", row_markup.type_label)


@register.filter
def card_fields(card: ModelCard) -> list[tuple[str, Any, str]]:
    """Every field of the card, as (label, value, kind) for the detail page, in the
    reference's order, then any field the API added that the dashboard doesn't know."""
    rows: list[tuple[str, Any, str]] = []
    for name in card.__struct_fields__:  # (msgspec.structs.fields reads the annotations)
        if name == "extra":
            continue
        rows.append(_field_row(name, getattr(card, name)))
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
        return name, [row_markup.capability_label(flag) for flag in value.ordered], "list"
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


@register.filter
def next_sort(query: ModelQuery, field: str) -> str:
    """The sort a click on ``field``'s column header asks for: the other direction if the
    list is sorted by it; else newest first, or names and ids A to Z."""
    if query.sort == field:
        return f"-{field}"
    if query.sort == f"-{field}" or field != "created":
        return field
    return f"-{field}"


@register.simple_tag(takes_context=True)
def model_row(context: Context, row: ModelRow) -> SafeString:
    """The list row of ``row`` (models_admin/rows.py)."""
    return mark_safe(row_markup.render_row(row, context))  # noqa: S308  # every value escaped there


@register.simple_tag(takes_context=True)
def model_rows(context: Context, rows: Iterable[ModelRow]) -> SafeString:
    """The list rows of ``rows``, one after the other: what including _model_row.html
    for each gives, without an include per row."""
    render = row_markup.RowRenderer(context)
    html = "".join(f"{render(row)}\n" for row in rows)
    return mark_safe(html)  # noqa: S308  # every value escaped there
