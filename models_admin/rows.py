"""The model list's row, in Python: ``{% model_row row %}`` (templates/models_admin/
_model_row.html is that one tag, for the single-row answers) and ``{% model_rows rows %}``
(the table's rows, without an include per row), so every row gets this markup, and only
this.

Through the template engine 50 rows took about 25 ms on the benchmark machine (a dozen
variable lookups and filters, five URL tags and an include for the archive button per
row), the largest part of a page rendered on a cold fragment; here, about 0.5 ms (one
``RowRenderer`` for the table). It is string building: every value is escaped as the
template's autoescaping did (``escape``), dates are formatted as the ``date`` filter
formats them, and the markup, whitespace included, is what the template gave."""

from __future__ import annotations

import functools
from datetime import datetime
from html import escape as _escape
from urllib.parse import quote

from django.conf import settings
from django.template.context import Context
from django.urls import get_script_prefix, reverse
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.text import slugify
from django.utils.timezone import get_current_timezone, is_aware

from models_admin import fragments
from models_admin.inventory import ModelRow
from models_admin.remote import Capabilities, ModelCard


def escape(value: object) -> str:
    """What ``django.utils.html.escape`` gives (it is ``html.escape``), without its check
    for lazy strings on every call."""
    return _escape(str(value))


NO_DATE = (
    '<span class="muted" title="Mistral does not report when base models were created">—</span>'
)


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


@functools.lru_cache(maxsize=32)
def _escaped_url_parts(name: str, script_prefix: str) -> tuple[str, str]:
    head, tail = _model_url_parts(name, script_prefix)
    return escape(head), escape(tail)


def model_url(name: str, model_id: str) -> str:
    """``{% url 'models_admin:<name>' model_id %}`` for the model pages, without resolving
    the URL pattern again for every row (the list renders five such links per row).
    Quoted as reverse() quotes; an id the URL pattern would refuse gets a link that
    404s instead of a NoReverseMatch."""
    head, tail = _model_url_parts(name, get_script_prefix())
    return head + quote_id(model_id) + tail


def quote_id(model_id: str) -> str:
    return quote(model_id, safe=RFC3986_SUBDELIMS + "~:@")


class _Urls:
    """A row's links, escaped: the id quoted and escaped once for all five (escaping a
    concatenation is concatenating the escaped parts)."""

    __slots__ = ("quoted", "prefix")

    def __init__(self, model_id: str, prefix: str) -> None:
        self.quoted = escape(quote_id(model_id))
        self.prefix = prefix

    def __call__(self, name: str) -> str:
        head, tail = _escaped_url_parts(name, self.prefix)
        return head + self.quoted + tail


def capability_label(flag: str) -> str:
    return _CAPABILITY_LABELS.get(flag, flag.replace("_", " "))


@functools.lru_cache(maxsize=64)
def _badges(capabilities: Capabilities) -> str:
    """A row's capability badges: an inventory has a handful of distinct sets."""
    return "".join(
        f'<span class="badge cap">{escape(capability_label(flag))}</span>'
        for flag in capabilities.ordered
    )


def _ymd(local: datetime) -> str:
    """``|date:"Y-m-d"`` of a time already in the current time zone (``|date:"c"`` of
    one is its ``isoformat()``)."""
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d}"


@functools.lru_cache(maxsize=64)
def _slug(value: str) -> str:
    return slugify(value)


def type_label(card: ModelCard) -> str:
    """The type as the list and the model page say it (also the ``type_label`` filter)."""
    if card.is_fine_tuned:
        return "Fine-tuned"
    if card.is_base:
        return "Base"
    return card.type


def render_row(row: ModelRow, context: Context) -> str:
    """One ``<tr>``: ``context`` gives the abilities, the CSRF token (or its hole in a
    shared fragment) and where the row's forms lead back to."""
    return RowRenderer(context)(row)


class RowRenderer:
    """Renders rows for one context: what every row shares (the abilities, the CSRF
    input, the back link, the URL prefix, the time zone) is read from it once."""

    __slots__ = ("can_change", "can_delete", "csrf_input", "next_input", "prefix", "tz")

    def __init__(self, context: Context) -> None:
        self.can_change = bool(context.get("can_change"))
        self.can_delete = bool(context.get("can_delete"))
        self.csrf_input = _csrf_input(context)
        self.next_input = f'<input type="hidden" name="next" value="{escape(_row_next(context))}">'
        self.prefix = get_script_prefix()
        self.tz = get_current_timezone() if settings.USE_TZ else None

    def __call__(self, row: ModelRow) -> str:
        card = row.card
        can_change = self.can_change
        ident = escape(card.id)
        shown = escape(card.display_name)
        out = [f'<tr data-model-id="{ident}">\n  ']
        if can_change:
            out.append('<td class="select">')
            if card.is_fine_tuned:
                out.append(
                    f'<input type="checkbox" name="ids" value="{ident}" form="bulk-form" '
                    f'aria-label="Select {shown}">'
                )
            out.append("</td>")
        urls = _Urls(card.id, self.prefix)
        detail = urls("model_detail")
        out.append(
            f'\n  <td class="name">\n    <a href="{detail}" hx-boost="false">{shown}</a>\n    '
        )
        if card.name:
            out.append(f'<code class="id">{ident}</code>')
        out.append("\n    ")
        if card.problems:
            out.append(f'<span class="flagged" role="note">{escape(card.problem_message)}.</span>')
        out.append("\n    ")
        if row.aliases:
            aliases = ", ".join(f"<code>{escape(a)}</code>" for a in row.aliases)
            out.append(f'<span class="aliases">also: {aliases}</span>')
        archived = getattr(card, "archived", False)
        out.append(
            f'\n  </td>\n  <td class="col-type">\n    <span class="badge type-{_slug(card.type)}">'
            f"{escape(type_label(card))}</span>\n    "
        )
        if archived:
            out.append('<span class="badge archived">Archived</span>')
        out.append("\n    ")
        if card.deprecation:
            out.append(
                f'<span class="badge deprecated" title="Deprecated '
                f'{escape(_ymd(self._local(card.deprecation)))}">Deprecated</span>'
            )
        root = getattr(card, "root", "")
        out.append('\n  </td>\n  <td class="col-root">')
        out.append(f"<code>{escape(root)}</code>" if root else '<span class="muted">—</span>')
        out.append('</td>\n  <td class="caps col-caps">')
        out.append(_badges(card.capabilities))
        out.append('</td>\n  <td class="col-created">')
        created = card.created_at if card.is_fine_tuned else None
        if created:
            local = self._local(created)
            # Digits, "-", ":", "T", "." and "+": nothing to escape.
            out.append(f'<time class="date" datetime="{local.isoformat()}">{_ymd(local)}</time>')
        else:
            out.append(NO_DATE)
        out.append('</td>\n  <td class="row-actions"><div class="actions">\n    ')
        if card.is_fine_tuned and can_change:
            out.append(self._actions(urls, archived=bool(archived), shown=shown))
        out.append("\n  </div></td>\n</tr>")
        return "".join(out)

    def _local(self, value: datetime) -> datetime:
        """What ``template_localtime`` gives: an aware time in the current time zone
        (with USE_TZ), anything else as it is."""
        return value.astimezone(self.tz) if self.tz is not None and is_aware(value) else value

    def _actions(self, urls: _Urls, *, archived: bool, shown: str) -> str:
        """Rename, archive or unarchive, and delete (for those who may)."""
        edit = urls("model_edit")
        rename = urls("model_row_rename")
        action = urls("model_row_unarchive" if archived else "model_row_archive")
        verb = "Unarchive" if archived else "Archive"
        out = [
            f'\n      <a class="button small" href="{edit}" hx-get="{rename}" '
            'hx-target="closest tr" hx-swap="outerHTML" data-focus-key="rename" '
            f'aria-label="Rename {shown}">Rename</a>\n      \n\n'
            f'<form method="post" action="{action}" hx-post="{action}" hx-target="closest tr" '
            'hx-swap="outerHTML">\n  ',
            self.csrf_input,
            f"{self.next_input}\n"
            f'  <button type="submit" data-focus-key="archive" class="small" '
            f'aria-label="{verb} {shown}">{verb}</button>\n</form>\n\n      ',
        ]
        if self.can_delete:
            delete = urls("model_row_delete")
            out.append(
                f'\n      <a class="button small danger" href="{delete}" hx-get="{delete}" '
                'hx-target="#dialog" hx-swap="innerHTML" '
                f'aria-label="Delete {shown}">Delete</a>\n      '
            )
        out.append("\n    ")
        return "".join(out)


def _csrf_input(context: Context) -> str:
    """What ``{% csrf_token %}`` renders."""
    token = context.get("csrf_token")
    if not token or token == "NOTPROVIDED":  # noqa: S105  # Django's marker, no secret
        return ""
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(token)}">'


def _row_next(context: Context) -> str:
    """``row_next|default:request.htmx.current_url_abs_path|default:request.get_full_path``"""
    value = context.get("row_next")
    if value:
        return str(value)
    request = context.get("request")
    return fragments.row_next(request) if request is not None else ""
