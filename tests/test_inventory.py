"""The cached inventory (shared cache + per-process copy) and the list's row links."""

from __future__ import annotations

import dataclasses
import json
import pickle
from datetime import UTC, datetime

import pytest
from django.core.cache import cache
from django.urls import reverse

from models_admin import remote
from models_admin.inventory import Inventory, ModelQuery, SharedInventories, matching
from models_admin.remote import ModelCard
from models_admin.rows import model_url
from models_admin.sandbox import seed


def load_fixture_cards() -> list[ModelCard]:
    """The sandbox's seed inventory (base models with aliases, ~40 fine-tuned), parsed."""
    return [ModelCard.from_json(card) for card in seed.inventory("sandbox-test", 40).cards]


@pytest.fixture
def inventory() -> Inventory:
    return Inventory.build(load_fixture_cards())


class TestSharedInventories:
    def test_a_warm_read_reuses_this_process_copy(self, inventory):
        shared = SharedInventories()
        shared.set("inv:alice", inventory)

        assert shared.get("inv:alice") is inventory  # not unpickled again

    def test_another_process_loads_it_from_the_shared_cache(self, inventory):
        SharedInventories().set("inv:alice", inventory)
        other = SharedInventories()  # a second gunicorn worker: nothing local yet

        loaded = other.get("inv:alice")

        assert loaded is not inventory
        assert loaded == inventory
        assert other.get("inv:alice") is loaded

    def test_forgetting_in_one_process_is_seen_by_every_other(self, inventory):
        writer, reader = SharedInventories(), SharedInventories()
        writer.set("inv:alice", inventory)
        assert reader.get("inv:alice") == inventory

        writer.forget("inv:alice")

        assert reader.get("inv:alice") is None

    def test_a_newer_inventory_replaces_the_local_copy(self, inventory):
        writer, reader = SharedInventories(), SharedInventories()
        writer.set("inv:alice", inventory)
        reader.get("inv:alice")
        smaller = Inventory.build(list(load_fixture_cards())[:2])

        writer.set("inv:alice", smaller)

        assert reader.get("inv:alice") == smaller

    def test_an_evicted_inventory_is_a_miss(self, inventory):
        shared = SharedInventories()
        shared.set("inv:alice", inventory)
        head = cache.get("inv:alice")
        cache.delete(f"inv:alice:{head.token}")

        assert SharedInventories().get("inv:alice") is None

    def test_the_local_copies_are_bounded(self, inventory):
        shared = SharedInventories(max_local=2)
        for name in ("a", "b", "c"):
            shared.set(f"inv:{name}", inventory)

        assert len(shared._local) == 2
        assert shared.get("inv:a") == inventory  # still in the shared cache


class TestSharedBodies:
    """With the list call's body, the cache keeps the body (not pickled cards) and
    another process reads it again."""

    def made(self) -> tuple[Inventory, bytes]:
        raw = json.dumps({"data": seed.inventory("sandbox-test", 40).cards}).encode()
        cards = remote.read_model_list(raw)
        read_at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        inventory = dataclasses.replace(
            Inventory.build(cards), key_masked="sk-…abcd", read_at=read_at
        )
        return inventory, cards.raw

    def test_another_process_reads_the_body_again_with_its_source(self):
        inventory, raw = self.made()
        SharedInventories().set("inv:alice", inventory, raw)

        loaded = SharedInventories().get("inv:alice")

        assert loaded is not None and loaded is not inventory
        assert loaded == inventory
        assert (loaded.key_masked, loaded.read_at) == ("sk-…abcd", inventory.read_at)
        assert cache.get(f"inv:alice:{inventory.version}") == raw

    def test_a_cache_of_this_process_alone_keeps_only_the_head(self, settings):
        settings.MODEL_LIST_CACHE_BODIES = False
        inventory, raw = self.made()
        here = SharedInventories()
        here.set("inv:alice", inventory, raw)

        assert here.get("inv:alice") is inventory
        assert cache.get("inv:alice").token == inventory.version
        assert cache.get(f"inv:alice:{inventory.version}") is None
        assert SharedInventories().get("inv:alice") is None  # no copy to read: a miss

    def test_a_new_inventory_frees_the_body_it_replaces(self):
        here = SharedInventories()
        first, raw = self.made()
        here.set("inv:alice", first, raw)
        second, raw = self.made()

        here.set("inv:alice", second, raw)

        assert cache.get(f"inv:alice:{first.version}") is None
        assert cache.get(f"inv:alice:{second.version}") == raw
        assert SharedInventories().get("inv:alice") == second

    def test_a_damaged_body_is_a_miss(self):
        inventory, _ = self.made()
        SharedInventories().set("inv:alice", inventory, b"<html>not a list</html>")

        assert SharedInventories().get("inv:alice") is None


class TestInventory:
    def test_rows_compare_by_card_and_aliases_and_say_which_they_are(self, inventory):
        row = inventory.rows[0]

        assert row == Inventory.build([row.card]).rows[0]
        assert row != row.card
        assert repr(row).startswith(f"ModelRow({row.id!r}")
        assert inventory.find(row.id) is row and inventory.find("no-such-model") is None

    def test_it_pickles_round_trip(self, inventory):
        again = pickle.loads(pickle.dumps(inventory, pickle.HIGHEST_PROTOCOL))  # noqa: S301

        assert again == inventory
        assert [type(r.card) for r in again.rows] == [type(r.card) for r in inventory.rows]

    def test_fine_tuned_models_are_one_row_each_and_base_aliases_fold(self, inventory):
        cards: list[ModelCard] = list(load_fixture_cards())
        fine_tuned = [c for c in cards if c.is_fine_tuned]

        rows = {row.id: row for row in inventory.rows}

        assert all(c.id in rows and rows[c.id].aliases == () for c in fine_tuned)
        assert len(inventory.rows) < len(cards)  # the seed lists base aliases as cards
        assert any(row.aliases for row in inventory.rows if row.card.is_base)
        assert matching(inventory, ModelQuery(type="fine-tuned")) == [
            r for r in matching(inventory, ModelQuery()) if r.card.is_fine_tuned
        ]


class TestModelUrl:
    @pytest.mark.parametrize(
        "model_id",
        [
            "mistral-small-latest",
            "ft:open-mistral-7b:b6e34a5e:20240719:20178c3c",
            "ft:classifier:ministral-3b-latest:7f153c98:20240330:6ede8b2e",
            "codestral-2501@v1+x",
        ],
    )
    @pytest.mark.parametrize(
        "name", ["model_detail", "model_edit", "model_archive", "model_unarchive", "model_delete"]
    )
    def test_it_is_what_reverse_gives(self, name, model_id):
        assert model_url(name, model_id) == reverse(f"models_admin:{name}", args=[model_id])

    @pytest.mark.parametrize("model_id", ["a/../b", "x?y=1", "x#y", "a b"])
    def test_an_id_the_pattern_refuses_is_encoded_not_an_error(self, model_id):
        url = model_url("model_detail", model_id)

        assert url.startswith("/models/") and url.endswith("/")
        assert not any(c in url[len("/models/") : -1] for c in "/?# ")
