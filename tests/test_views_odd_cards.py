"""A card that breaks Mistral's contract is a flagged row, never a broken page (issue 11)."""

from __future__ import annotations

from pytest_django.asserts import assertContains, assertNotContains

from tests.conftest import ALICE_KEY
from tests.helpers import HTMX, add_odd_cards, url


class TestTheList:
    def test_odd_cards_are_flagged_rows_and_the_rest_works(self, as_alice, sandbox):
        odd = add_odd_cards(sandbox)

        response = as_alice.get(url("model_list"), {"q": "odd-"})

        assert response.status_code == 200
        assertContains(response, "Mistral sent an incomplete card: job.")
        assertContains(response, "Mistral sent an incomplete card: root.")
        assertContains(response, "Mistral sent an incomplete card: archived.")
        assertContains(response, odd["odd-unknown-type"]["id"])
        # The card without an id can't be a row: the list says so above the table.
        assertContains(response, "without a usable id")
        assertNotContains(response, 'data-model-id=""')

    def test_a_card_without_a_root_adds_no_empty_root_filter(self, as_alice, sandbox):
        add_odd_cards(sandbox)

        response = as_alice.get(url("model_list"))

        assertNotContains(response, '<option value=""></option>')

    def test_an_odd_card_can_still_be_archived_from_its_row(self, as_alice, sandbox):
        odd = add_odd_cards(sandbox)["odd-null-job"]

        response = as_alice.post(url("model_row_archive", odd["id"]), headers=HTMX)

        assert response.status_code == 200
        assert sandbox.state.workspace(ALICE_KEY).get(odd["id"])["archived"] is True


class TestTheModelPage:
    def test_it_says_what_mistral_left_out(self, as_alice, sandbox):
        odd = add_odd_cards(sandbox)["odd-no-root"]

        response = as_alice.get(url("model_detail", odd["id"]))

        assert response.status_code == 200
        assertContains(response, "Mistral sent an incomplete card: root.")
