"""Sessions in the database, with a copy in Redis (Django's ``cached_db``), used when
REDIS_URL is set: a warm request reads its session without a query.

The cache stays an accelerator: every cache call goes through inventory.safe_cache, so
a Redis that fails is a miss (the database answers) and never an error.

A copy is stamped with the access generation (models_admin/access.py) current when it
was made, and ``SessionCopyCheck`` compares the stamp with the generation read with the
request's user (no query of its own). Should a sign-out fail to drop the copy (Redis
down or frozen at that moment), ending the session bumps the generation in the
database: a copy of it that Redis gives back later no longer matches, the session is
read from the database again, and it is gone. Any other change of access (a role, a
key) also makes each session read itself from the database once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends import cached_db
from django.http import HttpRequest, HttpResponse

from models_admin import access
from models_admin.inventory import safe_cache


class SessionStore(cached_db.SessionStore):
    # The access generation of the copy this session was read from (None: read from the
    # database, or not read yet).
    copy_stamp: int | None = None

    def load(self) -> dict[str, Any]:
        found = safe_cache.get(self.cache_key)
        if isinstance(found, tuple) and len(found) == 2 and isinstance(found[1], dict):
            self.copy_stamp = found[0]
            return found[1]
        return self._load_from_database()

    def _load_from_database(self) -> dict[str, Any]:
        self.copy_stamp = None
        session = self._get_session_from_db()  # type: ignore[attr-defined]
        if session is None:
            return {}
        loaded: dict[str, Any] = self.decode(session.session_data)
        self._copy(loaded, self._cache_seconds(session.expire_date))
        return loaded

    def reread(self) -> bool:
        """Read the session again from the database (and copy it anew); False when it
        has ended there."""
        self._session_cache = self._load_from_database()
        return self._session_key is not None

    def exists(self, session_key: str) -> bool:
        return super(cached_db.SessionStore, self).exists(session_key)

    def save(self, must_create: bool = False) -> None:
        super(cached_db.SessionStore, self).save(must_create)
        self._copy(self._session, self._cache_seconds())  # type: ignore[attr-defined]

    def delete(self, session_key: str | None = None) -> None:
        super(cached_db.SessionStore, self).delete(session_key)
        session_key = session_key or self.session_key
        if session_key is not None and not safe_cache.delete(self.cache_key_prefix + session_key):
            access.bump()  # the copy may outlive the session: make it stale

    def _copy(self, data: dict[str, Any], seconds: int) -> None:
        safe_cache.set(self.cache_key, (access.current(), data), seconds)

    def _cache_seconds(self, expiry: Any = None) -> int:
        age = self.get_expiry_age() if expiry is None else self.get_expiry_age(expiry=expiry)
        return max(0, min(age, settings.SESSION_CACHE_SECONDS))


class SessionCopyCheck:
    """After AuthenticationMiddleware: a signed-in request whose session came from a
    copy older than the last change of access reads its session from the database
    again; if it has ended there, the request is anonymous."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = request.session
        if isinstance(session, SessionStore) and request.user.is_authenticated:
            generation = getattr(request.user, access.GENERATION, None)
            stamp = session.copy_stamp
            stale = stamp is not None and generation is not None and generation != stamp
            if stale and not session.reread():
                request.user = AnonymousUser()
        return self.get_response(request)
