"""The model edit form (``forms.py``) at its edges, through the edit view against the
sandbox: a 422 that names no field, control characters in a description, and a stale or
forged ``expected`` field. Nothing reaches Mistral when the form refuses."""

from __future__ import annotations

import json

import pytest
from pytest_django.asserts import assertContains

from tests.helpers import HTMX, fine_tuned, url

IN_FIELDS = {**HTMX, "HX-Target": "model-fields"}


def post(client, card: dict, **data: str):
    payload = {
        "name": card["name"] or "",
        "description": card["description"] or "",
        "expected": json.dumps({"name": card["name"], "description": card["description"]}),
        **data,
    }
    return client.post(url("model_edit", card["id"]), payload, headers=IN_FIELDS)


def patches(sandbox) -> list:
    return [r for r in sandbox.state.requests if r.method == "PATCH"]


class TestUpstreamRefusal:
    @pytest.mark.parametrize(
        ("body", "shown"),
        [
            ({"message": "Workspace is read-only"}, "Workspace is read-only"),
            (
                {"detail": [{"type": "x", "loc": ["body", "suffix"], "msg": "Suffix locked"}]},
                "Suffix locked",
            ),
        ],
        ids=["no-field", "unknown-field"],
    )
    def test_a_422_the_form_cannot_place_is_shown_on_the_form(self, as_alice, sandbox, body, shown):
        card = fine_tuned(sandbox)
        sandbox.state.faults.set(fail_status=422, fail_times=1, fail_body=body, match="PATCH")

        response = post(as_alice, card, name="renamed")

        assertContains(response, shown)
        (error,) = response.context["form"].non_field_errors()
        assert shown in error
        assert len(patches(sandbox)) == 1


class TestValidation:
    def test_a_description_with_control_characters_is_refused(self, as_alice, sandbox):
        card = fine_tuned(sandbox)

        response = post(as_alice, card, description="bell\x07")

        assert response.context["form"].errors["description"] == [
            "A description can't contain control characters."
        ]
        assert patches(sandbox) == []

    @pytest.mark.parametrize(
        "expected",
        ["not json", '{"name": "x"}', '{"name": 1, "description": null}', "[]"],
        ids=["not-json", "missing-key", "wrong-type", "not-a-dict"],
    )
    def test_an_unusable_expected_is_refused(self, as_alice, sandbox, expected):
        card = fine_tuned(sandbox)

        response = post(as_alice, card, name="renamed", expected=expected)

        assert response.context["form"].errors["expected"] == [
            "The form is out of date; reload the page."
        ]
        assert patches(sandbox) == []

    def test_an_unusable_expected_asks_for_a_reload(self, as_alice, sandbox):
        card = fine_tuned(sandbox)

        response = post(as_alice, card, name="renamed", expected="not json")

        assertContains(response, "The form is out of date; reload the page.")
