"""The detail page's field list and type badge (``templatetags``) for cards beyond the
seeded ones: a type the dashboard doesn't know, fields the API added, no ``created``."""

from __future__ import annotations

from pytest_django.asserts import assertContains, assertNotContains

from tests.conftest import ALICE_KEY
from tests.helpers import fine_tuned, url


class TestDetailFields:
    def test_unknown_fields_are_listed_as_json_and_a_missing_created_has_no_utc_row(
        self, as_alice, sandbox
    ):
        card = dict(fine_tuned(sandbox), created=None, new_limits={"rpm": 60}, tags=["a", "b"])
        sandbox.state.workspace(ALICE_KEY).put(card)

        response = as_alice.get(url("model_detail", card["id"]))

        assertContains(response, "new_limits")
        assertContains(response, "&quot;rpm&quot;: 60")
        assertContains(response, "&quot;b&quot;")
        assertNotContains(response, "created (UTC)")

    def test_a_type_the_dashboard_does_not_know_is_shown_as_sent(self, as_alice, sandbox):
        card = dict(fine_tuned(sandbox), id="custom-model-1", type="custom")
        sandbox.state.workspace(ALICE_KEY).put(card)

        response = as_alice.get(url("model_detail", card["id"]))

        assertContains(response, '<span class="badge type-custom">custom</span>', html=True)
