"""Rendered fragments of the model list, shared across requests, users and workers.

Rendering 50 rows through Django templates costs ten times what the rest of a request
does, and the same rows are asked for again and again. ``{% shared_fragment %}``
renders its content once per (fragment, version, query string, abilities) and keeps
the HTML in the shared cache for as long as the inventory lives. The table's version is
the inventory's: a new list call (a refresh, a change, the cache's expiry) gives a new
one, so a stale table is never found again. The filter form's is what it depends on,
the choices the inventory offers (``Inventory.choices_version``): a new list call with
the same roots and capabilities finds its form rendered.

What must never travel between users stays out of the cached HTML: the per-request
values (the CSRF token, the page a row's form goes back to) are rendered as holes,
markers derived from SECRET_KEY that no upstream data can forge, and filled in for each
request. What the markup shows depends on the user only through the abilities the
templates read (models_admin.context_processors.abilities), and those are in the key:
two users of different roles never share a fragment, two of the same role share it
only for the same inventory (the same API key's list) and query string.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.http import HttpRequest
from django.template.base import FilterExpression, Node, NodeList, Parser, Token
from django.template.context import Context
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from models_admin.inventory import safe_cache

# The context flags the cached templates may read (context_processors.abilities).
ABILITIES: Final = (
    "can_change",
    "can_delete",
    "can_manage_team",
    "can_view_audit",
    "can_export_audit",
)
# Query parameters that do not change what a fragment shows.
IGNORED_PARAMETERS: Final = frozenset({"refresh"})


def _marker(name: str) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"hole:{name}".encode(), hashlib.sha256)
    return f"hole{digest.hexdigest()[:24]}"


def holes() -> dict[str, str]:
    """The context values rendered as holes in a shared fragment, by name."""
    return {"csrf_token": _marker("csrf_token"), "row_next": _marker("row_next")}


def fill(html: str, context: Context) -> SafeString:
    """The cached HTML with this request's values in its holes (escaped as the template
    would have)."""
    request = context.get("request")
    values = {
        "csrf_token": str(context.get("csrf_token", "")),
        "row_next": row_next(request) if request is not None else "",
    }
    for name, marker in holes().items():
        if marker in html:
            html = html.replace(marker, str(conditional_escape(values[name])))
    return mark_safe(html)  # noqa: S308  # rendered by our templates, holes escaped


def row_next(request: HttpRequest) -> str:
    """Where a row's plain form post leads back to: the page the user is on."""
    htmx = getattr(request, "htmx", None)
    return (htmx.current_url_abs_path if htmx else None) or request.get_full_path()


def key(name: str, version: str, request: HttpRequest, abilities: Iterable[Any]) -> str:
    """The cache key of a fragment: which one, of which inventory, for which query
    string (in its order: links repeat it) and which abilities."""
    query = urlencode(
        [(k, v) for k, values in request.GET.lists() if k not in IGNORED_PARAMETERS for v in values]
    )
    parts = "\x1f".join((name, version, request.path, query, *map(str, abilities)))
    return f"fragment:v1:{hashlib.sha256(parts.encode()).hexdigest()[:40]}"


class SharedFragmentNode(Node):
    def __init__(self, name: str, version: FilterExpression, nodelist: NodeList) -> None:
        self.name = name
        self.version = version
        self.nodelist = nodelist

    def render(self, context: Context) -> str:
        version = self.version.resolve(context, ignore_failures=True)
        request = context.get("request")
        if not version or request is None:  # nothing to share: an error, no key
            return self.nodelist.render(context)
        cache_key = key(self.name, version, request, (context.get(a) for a in ABILITIES))
        html = safe_cache.get(cache_key)
        if not isinstance(html, str):
            with context.push(holes()):
                html = str(self.nodelist.render(context))
            safe_cache.set(cache_key, html, settings.MODEL_LIST_CACHE_SECONDS)
        return fill(html, context)


def shared_fragment(parser: Parser, token: Token) -> SharedFragmentNode:
    """``{% shared_fragment "name" inventory.version %}...{% endshared_fragment %}``"""
    bits = token.split_contents()
    if len(bits) != 3 or bits[1][0] not in "\"'":
        raise template.TemplateSyntaxError(
            'usage: {% shared_fragment "name" version %}...{% endshared_fragment %}'
        )
    nodelist = parser.parse(("endshared_fragment",))
    parser.delete_first_token()
    return SharedFragmentNode(bits[1][1:-1], parser.compile_filter(bits[2]), nodelist)
