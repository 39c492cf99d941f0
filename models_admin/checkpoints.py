"""Signed checkpoints of the audit chain, kept outside the database.

The hash chain proves that no entry was altered, removed or reordered *within* what
the database holds; it can't see the last entries deleted with the chain head moved
back, or every row deleted. A checkpoint closes that gap the way AWS CloudTrail's digest
files do: a small signed statement "entry #seq had hash H; the log held N entries at
time T", delivered where the database's users can't reach it.

- ``write_checkpoint()`` makes one and writes it to the logs as one line (``audit
  checkpoint {...}``, logger ``models_admin.audit``), and as a file into
  AUDIT_CHECKPOINT_DIR when that is set. It runs after each export, from
  ``manage.py audit_checkpoint`` (cron, or the task queue's scheduler: register this
  plain function as a periodic task), and for each download of ``/audit/checkpoint/``
  by a team admin or an auditor, who keeps the file.
- ``verify(checkpoints)`` (``manage.py verify_audit_chain --checkpoint FILE ...``) fails
  when the log no longer reaches a checkpoint (truncated, emptied) or disagrees with it.

Signed with HMAC-SHA256 under AUDIT_CHECKPOINT_KEY (AUDIT_HMAC_KEY when empty): a
separate key can live on the hosts that verify and the one that signs only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from models_admin.models import AuditEntry

logger = logging.getLogger("models_admin.audit")

VERSION = 1
_PREFIX = "audit checkpoint "


class InvalidCheckpoint(ValueError):
    """A file or line that is not a checkpoint, or whose signature does not match."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int  # the last entry's sequence number (0: an empty log)
    hash: str  # that entry's hash
    count: int  # how many entries the log held
    time: str  # when (UTC, ISO 8601)
    version: int = VERSION
    signature: str = ""

    def to_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def valid(self) -> bool:
        return hmac.compare_digest(self.signature, _sign(self))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A checkpoint from its JSON, or from a log line that carries it. Raises
        InvalidCheckpoint."""
        start = text.find("{")
        try:
            data: Any = json.loads(text[start:]) if start >= 0 else None
            checkpoint = cls(
                seq=int(data["seq"]),
                hash=str(data["hash"]),
                count=int(data["count"]),
                time=str(data["time"]),
                version=int(data["version"]),
                signature=str(data["signature"]),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidCheckpoint(f"not a checkpoint: {text[:80]!r}") from exc
        if not checkpoint.valid:
            raise InvalidCheckpoint(f"checkpoint #{checkpoint.seq}: the signature does not match")
        return checkpoint


def _sign(checkpoint: Checkpoint) -> str:
    key = (settings.AUDIT_CHECKPOINT_KEY or settings.AUDIT_HMAC_KEY).encode()
    fields = {k: v for k, v in asdict(checkpoint).items() if k != "signature"}
    message = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def current() -> Checkpoint:
    """A signed checkpoint of the log as it is now."""
    last = AuditEntry.objects.order_by("-seq").values("seq", "hash").first()
    unsigned = Checkpoint(
        seq=last["seq"] if last else 0,
        hash=last["hash"] if last else "",
        count=AuditEntry.objects.count(),
        time=timezone.now().isoformat(timespec="seconds"),
    )
    return Checkpoint(**{**asdict(unsigned), "signature": _sign(unsigned)})


def write_checkpoint() -> Checkpoint:
    """Make a checkpoint and deliver it: one log line, and a file in
    AUDIT_CHECKPOINT_DIR when set. Idempotent in effect (a second run adds a
    checkpoint of the same log); safe to run from a scheduler."""
    checkpoint = current()
    logger.info("%s%s", _PREFIX, checkpoint.to_line())
    if directory := settings.AUDIT_CHECKPOINT_DIR:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        stamp = checkpoint.time.replace(":", "").replace("+0000", "Z")
        (path / f"audit-checkpoint-{checkpoint.seq}-{stamp}.json").write_text(
            checkpoint.to_line() + "\n"
        )
    return checkpoint


def read(path: str | Path) -> list[Checkpoint]:
    """Every checkpoint in a file: a downloaded checkpoint, or log lines (lines without
    one are skipped). Raises InvalidCheckpoint (also for a file with none) or OSError."""
    found = [
        Checkpoint.parse(line)
        for line in Path(path).read_text().splitlines()
        if line.strip().startswith("{") or _PREFIX in line
    ]
    if not found:
        raise InvalidCheckpoint(f"{path}: no checkpoint in this file")
    return found


def verify(checkpoints: list[Checkpoint]) -> list[str]:
    """What is wrong with the log, checkpoint by checkpoint (empty: it reaches every one
    and agrees with it). Check the chain itself with audit_chain.verify_chain()."""
    problems: list[str] = []
    for checkpoint in sorted(checkpoints, key=lambda c: c.seq):
        if checkpoint.seq == 0:
            continue
        row = AuditEntry.objects.filter(seq=checkpoint.seq).values("hash").first()
        if row is None:
            last = AuditEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
            problems.append(
                f"the log no longer reaches checkpoint #{checkpoint.seq} of {checkpoint.time} "
                f"(it ends at #{last or 0}): entries were removed"
            )
        elif row["hash"] != checkpoint.hash:
            problems.append(
                f"entry #{checkpoint.seq} disagrees with the checkpoint of {checkpoint.time} "
                "(the log was rewritten up to it)"
            )
        elif AuditEntry.objects.filter(seq__lte=checkpoint.seq).count() != checkpoint.count:
            problems.append(
                f"the log holds a different number of entries up to #{checkpoint.seq} "
                f"than the checkpoint of {checkpoint.time} ({checkpoint.count})"
            )
    return problems
