"""A list row's own endpoints when the model can't be read (``views/models.py``): the
fresh row, its rename form, and the delete dialog's summary; and an audit entry that
does not exist."""

from __future__ import annotations

import pytest
from pytest_django.asserts import assertContains, assertTemplateNotUsed, assertTemplateUsed

from tests.conftest import ALICE_KEY
from tests.helpers import HTMX, fine_tuned, url

GONE = "ft:open-mistral-7b:00000000:20240101:00000000"


def sent(sandbox, method: str) -> list:
    return [r for r in sandbox.state.requests if r.method == method]


class TestRowOfAModelThatCannotBeRead:
    @pytest.mark.parametrize("name", ["model_row", "model_row_rename"])
    def test_a_gone_model_swaps_nothing_and_says_why(self, as_alice, sandbox, name):
        response = as_alice.get(url(name, GONE), headers=HTMX)

        assert response["HX-Reswap"] == "none"
        assertTemplateNotUsed(response, "models_admin/_model_row.html")
        assertTemplateNotUsed(response, "models_admin/_model_row_rename.html")
        assertContains(response, "That model does not exist on Mistral (any more).")


class TestDeleteDialogWithoutTheCard:
    def test_a_wrong_id_is_refused_even_when_the_card_cannot_be_read(self, as_alice, sandbox):
        card = fine_tuned(sandbox)
        sandbox.state.faults.set(fail_status=503, fail_times=10, match="GET")

        response = as_alice.post(
            url("model_delete", card["id"]),
            {"confirm_id": "not-the-id", "reason": "obsolete"},
            headers=HTMX,
        )

        assertTemplateUsed(response, "models_admin/_delete_dialog.html")
        assertContains(response, "Type it exactly")
        assert sent(sandbox, "DELETE") == []
        assert card["id"] in sandbox.state.workspace(ALICE_KEY).models


class TestAuditDetail:
    def test_an_entry_that_does_not_exist_is_404(self, as_alice):
        response = as_alice.get(url("audit_detail", 999_999))

        assert response.status_code == 404
