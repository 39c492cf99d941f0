"""Strings from outside (Mistral's names, descriptions, ids, whole model cards) made
safe to store, on SQLite and PostgreSQL alike.

PostgreSQL refuses a NUL character in text and in jsonb (``\\u0000``), and no database
driver can encode a lone UTF-16 surrogate (``"\\ud800"``, which JSON allows). Both are
replaced by U+FFFD (the replacement character, shown as "�"), so the entry is stored
and a reader sees that something was there. A value longer than its column is cut and
ends with "…". What the dashboard sends back to Mistral is never cleaned: only what it
stores.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.db import models

REPLACEMENT = "\ufffd"
_REFUSED = re.compile("[\x00\ud800-\udfff]")


def text(value: str, max_length: int | None = None, *, escape: bool = False) -> str:
    """``value`` as the database will store it: refused characters replaced, and cut
    to ``max_length`` characters (the last one "…", or "..." when escaping) when
    longer. ``escape``: the string as a JSON string's inside (control and non-ASCII
    characters as ``\\uXXXX``), the last resort when a database refused a value anyway."""
    cleaned = json.dumps(value)[1:-1] if escape else _REFUSED.sub(REPLACEMENT, value)
    if max_length is not None and len(cleaned) > max_length:
        cleaned = cleaned[: max_length - 3] + "..." if escape else cleaned[: max_length - 1] + "…"
    return cleaned


def json_value(value: Any, *, escape: bool = False) -> Any:
    """A JSON value (keys included) with every string cleaned by ``text``, uncut."""
    if isinstance(value, str):
        return text(value, escape=escape)
    if isinstance(value, dict):
        return {text(str(k), escape=escape): json_value(v, escape=escape) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v, escape=escape) for v in value]
    return value


class StorableTextField(models.TextField):  # type: ignore[type-arg]
    """A TextField for strings from outside: cleaned by ``text`` when saved."""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return text(value) if isinstance(value, str) else value


class StorableCharField(models.CharField):  # type: ignore[type-arg]
    """A CharField for strings from outside: cleaned and cut to max_length when saved."""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return text(value, self.max_length) if isinstance(value, str) else value
