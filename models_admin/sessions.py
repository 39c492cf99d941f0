"""Sessions in the database, with a copy in Redis (Django's ``cached_db``), used when
REDIS_URL is set: a warm request reads its session without a query.

The cache stays an accelerator: every cache call goes through inventory.safe_cache, so
a Redis that fails is a miss (the database answers) and never an error. The copy lives
at most SESSION_CACHE_SECONDS: should Redis fail while a session is ended (sign-out),
the copy it could not drop outlives the session by no more than that.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.sessions.backends import cached_db

from models_admin.inventory import safe_cache


class SessionStore(cached_db.SessionStore):
    def load(self) -> dict[str, Any]:
        data = safe_cache.get(self.cache_key)
        if isinstance(data, dict):
            return data
        session = self._get_session_from_db()  # type: ignore[attr-defined]
        if session is None:
            return {}
        loaded: dict[str, Any] = self.decode(session.session_data)
        safe_cache.set(self.cache_key, loaded, self._cache_seconds(session.expire_date))
        return loaded

    def exists(self, session_key: str) -> bool:
        return super(cached_db.SessionStore, self).exists(session_key)

    def save(self, must_create: bool = False) -> None:
        super(cached_db.SessionStore, self).save(must_create)
        safe_cache.set(self.cache_key, self._session, self._cache_seconds())  # type: ignore[attr-defined]

    def delete(self, session_key: str | None = None) -> None:
        super(cached_db.SessionStore, self).delete(session_key)
        session_key = session_key or self.session_key
        if session_key is not None:
            safe_cache.delete(self.cache_key_prefix + session_key)

    def _cache_seconds(self, expiry: Any = None) -> int:
        age = self.get_expiry_age() if expiry is None else self.get_expiry_age(expiry=expiry)
        return max(0, min(age, settings.SESSION_CACHE_SECONDS))
