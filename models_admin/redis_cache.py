"""Django's Redis cache backend, with one ``redis.Redis`` client per connection pool, and
a list call's body stored as it is.

Django builds a new client for every cache call; the client's constructor fills a table
of about 170 response callbacks, which costs more than a round trip to a local Redis (a
warm list page makes four calls). A client over a pool is thread-safe, so one is kept.

Django pickles every value but integers. A list call's body (inventory.SharedInventories
shares it between workers) is megabytes of JSON: pickling copies it into a new buffer
(about 4 ms at 10,000 models, on the page that made the list call) and reading it back
copies it again. ``Serializer`` hands such bytes to Redis as they are.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends import redis


class Serializer(redis.RedisSerializer):
    """Django's (pickle; integers as they are), but bytes that start with ``{`` (a JSON
    object: a list call's body) are stored and read back as they are. Nothing else is
    mistaken for them: pickle's output starts with its protocol byte (0x80), and an
    integer with a digit or a sign."""

    def dumps(self, obj: Any) -> Any:
        if type(obj) is bytes and obj[:1] == b"{":
            return obj
        return super().dumps(obj)

    def loads(self, data: Any) -> Any:
        if data[:1] == b"{":
            return data
        return super().loads(data)


class RedisCacheClient(redis.RedisCacheClient):
    def __init__(self, servers: Any, serializer: Any = None, **options: Any) -> None:
        super().__init__(servers, serializer=serializer or Serializer, **options)

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        clients: dict[int, Any] = self.__dict__.setdefault("_clients", {})
        client = clients.get(id(pool))
        if client is None:
            client = clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class RedisCache(redis.RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
