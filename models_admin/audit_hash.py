"""The audit log's hash chain: what each entry's HMAC covers, and how it is computed.

``audit`` hashes an entry as it appends it; ``audit_chain`` recomputes every hash to
verify the chain. Both use what is here, so that they can never disagree.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from models_admin.models import AuditEntry

GENESIS = "0" * 64

# Everything an entry says, in the order it is hashed. ``attempt`` is hashed as the
# attempt's seq (stable across dumps and restores). Version 1 (the first release) left
# the ``actor`` link out: it is cleared when the user is deleted. Version 2 hashes the
# actor's id as ``actor_pk``, which is kept, and verify_chain checks that the link is
# that id or nothing; ``hash_version`` itself is hashed, so an entry can't be passed off
# as version 1. Not hashed: ``id`` (a surrogate key; links between entries are hashed
# as seq) and ``hash``.
HASHED_FIELDS = (
    "seq",
    "created_at",
    "kind",
    "attempt_seq",
    "actor_username",
    "actor_email",
    "actor_role",
    "action",
    "target_id",
    "target_name",
    "before",
    "changes",
    "details",
    "reason",
    "outcome",
    "upstream_status",
    "message",
    "ip",
    "user_agent",
    "request_id",
    "upstream_request_id",
    "credential_id",
    "credential_masked",
    "prev_hash",
)
HASH_VERSION = 2
HASHED_FIELDS_BY_VERSION = {1: HASHED_FIELDS, 2: (*HASHED_FIELDS, "actor_pk", "hash_version")}
ALL_HASHED_FIELDS = HASHED_FIELDS_BY_VERSION[HASH_VERSION]


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(values: Mapping[str, Any]) -> str:
    """HMAC-SHA256 over the hashed fields of an entry: a dict with the fields of its
    ``hash_version`` (HASHED_FIELDS_BY_VERSION; version 1 when the dict has none)."""
    content = {}
    for name in HASHED_FIELDS_BY_VERSION[values.get("hash_version") or 1]:
        value = values[name]
        if isinstance(value, datetime):
            value = value.isoformat()
        content[name] = value
    message = canonical(content).encode()
    return hmac.new(settings.AUDIT_HMAC_KEY.encode(), message, hashlib.sha256).hexdigest()


def hash_values(entry: AuditEntry, attempt_seq: int | None) -> dict[str, Any]:
    fields = HASHED_FIELDS_BY_VERSION[entry.hash_version]
    values = {name: getattr(entry, name) for name in fields if name != "attempt_seq"}
    values["attempt_seq"] = attempt_seq
    # JSON fields are hashed as they read back from the database.
    for name in ("before", "changes", "details"):
        values[name] = json.loads(canonical(values[name]))
    return values
