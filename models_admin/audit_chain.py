"""Verifying the audit log's hash chain (``manage.py verify_audit_chain``): every entry
in order, its link to the one before, its HMAC, its actor link, and the chain head.
What the chain alone cannot see (its last entries removed with the head moved back, or
every entry removed) the signed checkpoints catch (models_admin/checkpoints.py)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User

from models_admin.audit_hash import ALL_HASHED_FIELDS, GENESIS, entry_hash
from models_admin.models import AuditChainHead, AuditEntry


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    last_seq: int
    problem: str = ""
    first_bad_seq: int | None = None


def verify_chain(*, chunk_size: int = 2000) -> ChainReport:
    """Walk the whole chain in order; report the first entry that breaks it."""
    expected_seq, prev_hash, checked = 1, GENESIS, 0
    seq_of_pk: dict[int, int] = {}
    fields = ["pk", "attempt_id", "actor_id", *(f for f in ALL_HASHED_FIELDS if f != "attempt_seq")]
    rows = AuditEntry.objects.order_by("seq").values(*fields, "hash").iterator(chunk_size)
    users: set[int] | None = None  # the existing users' ids, fetched when first needed
    for row in rows:
        seq = row["seq"]
        if seq != expected_seq:
            problem = (
                f"entry #{expected_seq} is missing (the next entry is #{seq})"
                if seq > expected_seq
                else f"entry #{seq} appears twice or out of order"
            )
            return ChainReport(False, checked, expected_seq - 1, problem, expected_seq)
        if row["prev_hash"] != prev_hash:
            return ChainReport(
                False,
                checked,
                seq - 1,
                f"entry #{seq} does not follow entry #{seq - 1} (reordered, replaced or an entry before it changed)",
                seq,
            )
        values = dict(row)
        values["attempt_seq"] = seq_of_pk.get(row["attempt_id"]) if row["attempt_id"] else None
        if entry_hash(values) != row["hash"]:
            return ChainReport(
                False, checked, seq - 1, f"entry #{seq} was altered (its HMAC does not match)", seq
            )
        if row["hash_version"] >= 2 and row["actor_id"] != row["actor_pk"]:
            if users is None:
                users = set(User.objects.values_list("pk", flat=True))
            # Cleared is what deleting the user does; anything else is tampering.
            if row["actor_id"] is not None or row["actor_pk"] in users:
                problem = f"entry #{seq}'s actor link was changed (it must be user {row['actor_pk']} or none)"
                return ChainReport(False, checked, seq - 1, problem, seq)
        seq_of_pk[row["pk"]] = seq
        prev_hash = row["hash"]
        expected_seq += 1
        checked += 1
    last_seq = expected_seq - 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and (head.seq, head.hash) != (last_seq, prev_hash):
        if head.seq > last_seq:
            problem = f"entries #{last_seq + 1} to #{head.seq} were removed from the end of the log"
        else:
            problem = f"the chain head (#{head.seq}) does not match the last entry (#{last_seq})"
        return ChainReport(False, checked, last_seq, problem, last_seq + 1)
    return ChainReport(True, checked, last_seq)
