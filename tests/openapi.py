"""Validate response bodies against Mistral's published OpenAPI extract.

``validate(operation_id, status, body)`` checks ``body`` against the response schema
that operation declares for ``status`` in tests/fixtures/mistral-models-openapi.json,
with jsonschema's Draft 2020-12 validator, a ``referencing`` registry that resolves
the ``#/components/schemas/...`` refs, and format checking on. ``validate_component``
does the same for a named component (e.g. the 422 body of an operation that does
not declare 422).

OpenAPI's ``discriminator`` is not a JSON Schema keyword; the ``oneOf`` next to it
still decides, because every variant pins its discriminator with ``const``.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "fixtures" / "mistral-models-openapi.json"
SPEC_URI = "urn:mistral:models-openapi"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@functools.cache
def spec() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return document


@functools.cache
def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, DRAFT202012.create_resource(spec())
    )
    return registry


@functools.cache
def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    # jsonschema only checks date-time when rfc3339-validator is installed; it is not.
    def is_datetime(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not _RFC3339.match(value):
            return False
        datetime.fromisoformat(value.replace("z", "Z"))
        return True

    checker.checks("date-time", raises=ValueError)(is_datetime)
    return checker


def _pointer(*parts: str) -> str:
    escaped = (part.replace("~", "~0").replace("/", "~1") for part in parts)
    return quote("/" + "/".join(escaped), safe="/~")


def _operation(operation_id: str) -> tuple[str, str, dict[str, Any]]:
    for path, item in spec()["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return path, method, operation
    raise LookupError(f"no operation {operation_id!r} in {SPEC_PATH.name}")


def _check(ref: str, body: Any) -> None:
    validator = Draft202012Validator(
        {"$ref": f"{SPEC_URI}#{ref}"}, registry=_registry(), format_checker=_format_checker()
    )
    validator.validate(body)


def validate(operation_id: str, status: int, body: Any) -> None:
    """Raise jsonschema.ValidationError unless ``body`` fits the declared response."""
    path, method, operation = _operation(operation_id)
    responses = operation["responses"]
    if str(status) not in responses:
        raise LookupError(
            f"{operation_id} declares no {status} response (only {', '.join(responses)})"
        )
    _check(
        _pointer(
            "paths", path, method, "responses", str(status), "content", "application/json", "schema"
        ),
        body,
    )


def validate_component(name: str, body: Any) -> None:
    """Raise jsonschema.ValidationError unless ``body`` fits ``#/components/schemas/<name>``."""
    if name not in spec()["components"]["schemas"]:
        raise LookupError(f"no schema {name!r} in {SPEC_PATH.name}")
    _check(_pointer("components", "schemas", name), body)


OPERATIONS = {
    ("GET", "list"): "list_models_v1_models_get",
    ("GET", "model"): "retrieve_model_v1_models__model_id__get",
    ("DELETE", "model"): "delete_model_v1_models__model_id__delete",
    ("PATCH", "fine_tuned"): "jobs_api_routes_fine_tuning_update_fine_tuned_model",
    ("POST", "archive"): "jobs_api_routes_fine_tuning_archive_fine_tuned_model",
    ("DELETE", "archive"): "jobs_api_routes_fine_tuning_unarchive_fine_tuned_model",
}


def operation_for(method: str, path: str) -> str | None:
    """The operationId serving ``METHOD path`` (a raw URL path), or None."""
    parts = path.split("?")[0].split("/")
    if parts[:3] == ["", "v1", "models"]:
        kind = "list" if len(parts) == 3 else "model" if len(parts) == 4 else None
    elif parts[:4] == ["", "v1", "fine_tuning", "models"]:
        kind = "fine_tuned" if len(parts) == 5 else "archive" if len(parts) == 6 else None
    else:
        kind = None
    return OPERATIONS.get((method.upper(), kind)) if kind else None
