"""Each user works with their own key's workspace, and only with it.

Alice (team admin) and Bob (member) have keys for two different sandbox workspaces.
Whatever model ids Alice sends, she never sees or changes Bob's models, and every
upstream call made for her carries her own key."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from pytest_django.asserts import assertContains

from models_admin import remote, services
from models_admin.audit import Actor
from models_admin.sandbox import fingerprint
from tests.conftest import ALICE_KEY, BOB_KEY
from tests.helpers import HTMX, url


def fine_tuned_ids(sandbox, key: str) -> set[str]:
    return {
        c["id"] for c in sandbox.state.workspace(key).models.values() if c["type"] == "fine-tuned"
    }


def bobs_model(sandbox, *, archived: bool) -> dict:
    return next(
        c
        for c in sandbox.state.workspace(BOB_KEY).models.values()
        if c["type"] == "fine-tuned" and c["archived"] is archived
    )


def snapshot(sandbox, key: str) -> dict[str, dict]:
    return {model_id: dict(card) for model_id, card in sandbox.state.workspace(key).models.items()}


@pytest.fixture
def as_bob(bob):
    """Bob in a client of his own: these tests act as alice and bob side by side."""
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def bobs_ids(sandbox, bob) -> set[str]:
    ids = fine_tuned_ids(sandbox, BOB_KEY)
    assert ids and not ids & fine_tuned_ids(sandbox, ALICE_KEY)
    return ids


@pytest.fixture
def bob_listed_first(as_bob, sandbox):
    """Bob's inventory is in the cache, and the request log starts empty for Alice."""
    as_bob.get(url("model_list"))
    sandbox.state.requests.clear()


def only_alices_key_was_used(sandbox) -> bool:
    prints = {r.key_fingerprint for r in sandbox.state.requests}
    return prints == {fingerprint(ALICE_KEY)}


class TestList:
    def test_alice_sees_none_of_bobs_models(self, as_alice, sandbox, bobs_ids, bob_listed_first):
        response = as_alice.get(url("model_list"))

        listed = {row.id for row in response.context["inventory"].rows}
        assert listed >= fine_tuned_ids(sandbox, ALICE_KEY)
        assert not listed & bobs_ids
        assert not any(model_id.encode() in response.content for model_id in bobs_ids)
        assert only_alices_key_was_used(sandbox)

    @pytest.mark.parametrize(
        "query",
        [
            {"type": "fine-tuned"},
            {"archived": "yes"},
            {"sort": "id", "page": "2"},
            {"refresh": "1"},
        ],
    )
    def test_no_filter_reveals_them(self, as_alice, sandbox, bobs_ids, bob_listed_first, query):
        response = as_alice.get(url("model_list"), query, headers=HTMX)

        assert response.status_code == 200
        assert not any(model_id.encode() in response.content for model_id in bobs_ids)
        assert only_alices_key_was_used(sandbox)

    def test_searching_for_bobs_id_finds_nothing(self, as_alice, sandbox, bobs_ids):
        response = as_alice.get(url("model_list"), {"q": sorted(bobs_ids)[0]})

        assertContains(response, "Nothing matches")

    def test_bob_still_sees_his_own(self, as_alice, as_bob, sandbox, bobs_ids):
        as_alice.get(url("model_list"))

        response = as_bob.get(url("model_list"))

        listed = {row.id for row in response.context["inventory"].rows}
        assert listed >= bobs_ids
        assert not listed & fine_tuned_ids(sandbox, ALICE_KEY)


class TestActionsOnBobsModels:
    def test_detail_is_a_404(self, as_alice, sandbox, bob_listed_first):
        model = bobs_model(sandbox, archived=False)

        response = as_alice.get(url("model_detail", model["id"]))

        assertContains(response, "does not exist", status_code=404)
        assert model["name"] is None or model["name"].encode() not in response.content
        assert only_alices_key_was_used(sandbox)

    @pytest.mark.parametrize("page", ["model_edit", "model_delete", "model_row_delete"])
    def test_the_forms_do_not_open(self, as_alice, sandbox, bob_listed_first, page):
        model = bobs_model(sandbox, archived=False)

        response = as_alice.get(url(page, model["id"]), headers=HTMX)

        # An alert says why; nothing is swapped in.
        assertContains(response, "does not exist")
        assert response["HX-Reswap"] == "none"
        assert only_alices_key_was_used(sandbox)

    def test_edit_changes_nothing(self, as_alice, sandbox, bob_listed_first):
        model = bobs_model(sandbox, archived=False)
        before = snapshot(sandbox, BOB_KEY)
        expected = json.dumps({"name": model["name"], "description": model["description"]})

        response = as_alice.post(
            url("model_edit", model["id"]),
            {"name": "hijacked", "description": "by alice", "expected": expected},
            follow=True,
        )

        assertContains(response, "does not exist", status_code=404)
        assert snapshot(sandbox, BOB_KEY) == before
        assert only_alices_key_was_used(sandbox)
        assert {r.method for r in sandbox.state.requests} == {"GET"}

    @pytest.mark.parametrize(
        ("action", "archived"),
        [
            ("model_archive", False),
            ("model_unarchive", True),
            ("model_row_archive", False),
            ("model_row_unarchive", True),
        ],
    )
    @pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
    def test_archive_and_unarchive_change_nothing(
        self, as_alice, sandbox, bob_listed_first, action, archived, headers
    ):
        model = bobs_model(sandbox, archived=archived)
        before = snapshot(sandbox, BOB_KEY)

        response = as_alice.post(url(action, model["id"]), headers=headers)

        assert response.status_code in (200, 302)
        assert snapshot(sandbox, BOB_KEY) == before
        assert only_alices_key_was_used(sandbox)
        assert {r.method for r in sandbox.state.requests} == {"GET"}

    def test_archive_says_the_model_does_not_exist(self, as_alice, sandbox):
        model = bobs_model(sandbox, archived=False)

        response = as_alice.post(url("model_archive", model["id"]), follow=True)

        assertContains(response, "does not exist", status_code=404)
        assert sandbox.state.workspace(BOB_KEY).get(model["id"])["archived"] is False

    @pytest.mark.parametrize("action", ["model_delete", "model_row_delete"])
    @pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
    def test_delete_changes_nothing(self, as_alice, sandbox, bob_listed_first, headers, action):
        model = bobs_model(sandbox, archived=False)
        before = snapshot(sandbox, BOB_KEY)

        response = as_alice.post(
            url(action, model["id"]),
            {"confirm_id": model["id"], "reason": "trying bob's ids"},
            headers=headers,
        )

        assert response.status_code in (200, 302)
        assert snapshot(sandbox, BOB_KEY) == before
        assert only_alices_key_was_used(sandbox)
        assert {r.method for r in sandbox.state.requests} == {"GET"}

    def test_none_of_bobs_ids_is_found(self, as_alice, sandbox, bobs_ids, bob_listed_first):
        sample = sorted(bobs_ids)[::8]

        statuses = {as_alice.get(url("model_detail", model_id)).status_code for model_id in sample}

        assert statuses == {404}
        assert only_alices_key_was_used(sandbox)

    def test_bob_can_still_use_them(self, as_alice, as_bob, sandbox):
        model = bobs_model(sandbox, archived=False)
        as_alice.post(url("model_archive", model["id"]))

        response = as_bob.post(url("model_archive", model["id"]))

        assert response.status_code == 302
        assert sandbox.state.workspace(BOB_KEY).get(model["id"])["archived"] is True
        assert sandbox.state.requests[-1].key_fingerprint == fingerprint(BOB_KEY)


class TestServices:
    """The services pick the actor's own key whoever calls them."""

    @pytest.mark.parametrize(
        ("service", "kwargs"),
        [
            (services.model_get, {}),
            (services.model_archive, {}),
            (services.model_unarchive, {}),
            (services.model_delete, {"reason": "trying bob's ids"}),
        ],
        ids=["get", "archive", "unarchive", "delete"],
    )
    def test_bobs_ids_do_not_exist_for_alice(self, alice, bob, sandbox, service, kwargs):
        model = bobs_model(sandbox, archived=service is services.model_unarchive)
        before = snapshot(sandbox, BOB_KEY)

        with pytest.raises(remote.ModelNotFound):
            service(actor=Actor(user=alice), model_id=model["id"], **kwargs)

        assert snapshot(sandbox, BOB_KEY) == before
        assert only_alices_key_was_used(sandbox)

    def test_every_id_of_bob_is_refused(self, alice, sandbox, bobs_ids):
        before = snapshot(sandbox, BOB_KEY)
        refused = []

        for model_id in sorted(bobs_ids):
            for service in (services.model_get, services.model_archive):
                with pytest.raises(remote.ModelNotFound):
                    service(actor=Actor(user=alice), model_id=model_id)
                refused.append(model_id)

        assert len(refused) == 2 * len(bobs_ids)
        assert snapshot(sandbox, BOB_KEY) == before
        assert only_alices_key_was_used(sandbox)

    def test_the_cached_inventories_stay_apart(self, alice, bob, sandbox, bobs_ids):
        bobs = services.models_inventory(actor=Actor(user=bob))

        alices = services.models_inventory(actor=Actor(user=alice))

        assert {row.id for row in bobs.rows} >= bobs_ids
        assert not {row.id for row in alices.rows} & bobs_ids
        assert [r.key_fingerprint for r in sandbox.state.requests] == [
            fingerprint(BOB_KEY),
            fingerprint(ALICE_KEY),
        ]
