"""models_admin.redis_cache: a list call's body goes into Redis as it is (no pickled
copy) and comes back as the same bytes; every other value round-trips as Django's own
serializer would give it. Against a private ``redis-server`` on a free port."""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis as redis_py
from django.core.cache import cache

from models_admin import remote
from models_admin.inventory import Inventory, SharedInventories
from models_admin.redis_cache import Serializer
from models_admin.sandbox import seed
from tests import servers

BODY = json.dumps({"object": "list", "data": seed.inventory("sandbox-redis", 30).cards}).encode()


@pytest.fixture
def redis(settings) -> Iterator[servers.RedisServer]:
    with servers.redis_server() as server:
        settings.CACHES = {
            "default": {"BACKEND": "models_admin.redis_cache.RedisCache", "LOCATION": server.url}
        }
        settings.MODEL_LIST_CACHE_BODIES = True
        yield server


class TestSerializer:
    @pytest.mark.parametrize(
        "value",
        [
            7,
            -3,
            "7",
            "{not bytes}",
            b"",
            b"7",
            b"\x80\x05 pickle-like",
            b' {"data": []}',  # a body that does not start with "{": pickled, as before
            ("token", "sk-…abcd", datetime(2026, 11, 30, tzinfo=UTC)),
            {"a": [1, 2]},
        ],
    )
    def test_values_round_trip(self, value):
        serializer = Serializer()

        assert serializer.loads(_as_redis_returns(serializer.dumps(value))) == value

    def test_a_json_object_is_stored_as_it_is(self):
        assert Serializer().dumps(BODY) is BODY
        assert Serializer().loads(BODY) == BODY

    def test_what_django_stores_otherwise_is_unchanged(self):
        value = ("token", 3)

        assert Serializer().dumps(value) == pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        assert Serializer().dumps(12) == 12


def _as_redis_returns(stored: bytes | int) -> bytes:
    """What GET gives back for what SET was given (redis-py writes an int as digits)."""
    return str(stored).encode() if isinstance(stored, int) else stored


def test_a_shared_body_is_the_list_calls_bytes_in_redis_and_another_worker_reads_it(redis):
    cards = remote.read_model_list(BODY)
    read_at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    inventory = dataclasses.replace(Inventory.build(cards), key_masked="sk-…abcd", read_at=read_at)

    SharedInventories().set("inv:alice", inventory, cards.raw)
    loaded = SharedInventories().get("inv:alice")  # a second worker: nothing local

    stored = redis_py.Redis.from_url(redis.url).get(
        cache.make_key(f"inv:alice:{inventory.version}")
    )
    assert stored == BODY  # the bytes Mistral sent, not a pickle around them
    assert loaded is not None and loaded == inventory
    assert (loaded.version, loaded.key_masked, loaded.read_at) == (
        inventory.version,
        "sk-…abcd",
        read_at,
    )


def _command_calls(client: redis_py.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}


def test_the_body_and_its_head_are_written_together_in_one_round_trip(redis):
    cards = remote.read_model_list(BODY)
    inventory = Inventory.build(cards)
    client = redis_py.Redis.from_url(redis.url)
    client.config_resetstat()

    SharedInventories().set("inv:alice", inventory, cards.raw)

    calls = _command_calls(client)
    # One MSET inside MULTI/EXEC (a reader never sees the head without its body), the
    # expiries with it; no SET of either on its own.
    assert calls.get("mset") == 1 and calls.get("exec") == 1
    assert "set" not in calls
    assert client.ttl(cache.make_key("inv:alice")) > 0
    assert client.ttl(cache.make_key(f"inv:alice:{inventory.version}")) > 0


def test_a_cache_that_fails_while_writing_them_keeps_nothing(redis):
    cards = remote.read_model_list(BODY)
    inventory = Inventory.build(cards)
    here = SharedInventories()
    redis.stop()

    here.set("inv:alice", inventory, cards.raw)

    assert here._local == {}  # not remembered as shared: the next page reads the list
    assert here.get("inv:alice") is None
