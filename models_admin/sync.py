"""The inventory sync: changes made outside the dashboard, on the record.

Mistral's own audit log has no model events, so a model renamed, archived or deleted in
Mistral's console or by a script would leave no trace. The sync lists each distinct
stored key's models (one list call per key), compares the fine-tuned ones with the last
snapshot of that key's workspace (``ModelSnapshot``), and appends an ``outside`` entry to
the audit log for each difference the dashboard's own entries do not explain: a model
that appeared, disappeared, was renamed or re-described, archived or unarchived. Base
models are Mistral's catalogue, not the team's: they are not compared.

Which workspace: every key whose list shows fine-tuned models of a known workspace is
a key of it (``SyncKey``), so two keys of one workspace compare with one snapshot and
record each change once. A key that shows none keeps the workspace it had.

The dashboard's own changes: an attempt is written to the log *before* its request
goes to Mistral, so any change of the dashboard's that a list shows has its attempt in
the log by the time the list has been read (its ``seq`` is at most the chain head read
then). A difference is the dashboard's when an attempt on that model, recorded before
the list was read and not settled before the previous list was asked for (its change
could not show in that one), asked for exactly what the list shows: still pending,
unknown, or succeeded (a failed or denied one changed nothing). The comparison and the
entries it appends happen while holding the audit chain's head (one row lock), so a
sync never races another sync or the dashboard's appends.

What it cannot see: a change undone between two syncs (renamed and renamed back)
leaves no difference. The first list of a workspace is its baseline: nothing is
recorded for it. Every run is idempotent: a list older than the one the workspace was
last compared with is dropped.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, Final, cast

from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from models_admin import audit, audit_append, crypto, remote, sync_entries
from models_admin.logging import register_secret
from models_admin.models import (
    ApiCredential,
    AuditChainHead,
    AuditEntry,
    ModelSnapshot,
    SyncKey,
    SyncWorkspace,
)
from models_admin.sync_entries import BATCH, Row, Seen, clean_text

logger = logging.getLogger(__name__)

# How many listed ids are looked up to find the workspace a key belongs to.
SAMPLE = 200
# A sync that adds this many snapshot rows (a baseline) refreshes PostgreSQL's
# statistics of the table (_analyze).
ANALYZE_AFTER = 1000


class SyncFailed(Exception):
    """Some keys could not be listed (the others were synced)."""


# The longest model id the snapshot stores (its column's length).
ID_LENGTH = cast(int, ModelSnapshot._meta.get_field("model_id").max_length)


def _fine_tuned(listed: remote.ListedEntries) -> tuple[dict[str, Row], dict[str, int], set[str]]:
    """The fine-tuned models of a list by id, as the snapshot stores them; each one's
    position in the list (to make its card if it changed); and the ids of those whose
    compared fields break the contract (not compared: a missing ``archived`` is no
    unarchive, a missing ``name`` no rename). Entries without a usable id can't be told
    apart: left out. A plain body's strings are stored as they are (one check for the
    whole body instead of three per entry)."""
    seen: dict[str, Row] = {}
    positions: dict[str, int] = {}
    unreadable: set[str] = set()
    plain = listed.plain
    for index, entry in enumerate(listed.entries):
        raw_id = entry.id
        if entry.type != "fine-tuned" or not isinstance(raw_id, str) or not raw_id:
            continue
        if plain and len(raw_id) <= ID_LENGTH:
            model_id = raw_id
        else:
            model_id = clean_text(raw_id, ID_LENGTH) or ""
        name, description, archived = entry.name, entry.description, entry.archived
        if (
            not isinstance(archived, bool)
            or not (name is None or isinstance(name, str))
            or not (description is None or isinstance(description, str))
        ):
            unreadable.add(model_id)
            continue
        if not plain:
            name, description = clean_text(name), clean_text(description)
        seen[model_id] = (model_id, name, description, archived)
        positions[model_id] = index
    return seen, positions, unreadable


@dataclass(slots=True)
class KeyResult:
    """What one key's sync did, for the command's output and the upkeep summary."""

    credential: str  # the masked key
    status: str  # "baseline", "synced", "stale" or "failed"
    workspace: int | None = None
    models: int = 0
    recorded: int = 0
    explained: int = 0  # differences that were the dashboard's own changes
    message: str = ""

    def __str__(self) -> str:
        if self.status == "failed":
            return f"key {self.credential}: failed: {self.message}"
        where = f"workspace #{self.workspace}, {self.models} fine-tuned model(s)"
        if self.status == "baseline":
            return f"key {self.credential}: {where}: first list, kept as the baseline."
        if self.status == "stale":
            return f"key {self.credential}: {where}: a newer list was compared already."
        return (
            f"key {self.credential}: {where}: {self.recorded} outside change(s) recorded, "
            f"{self.explained} difference(s) made through the dashboard."
        )


# --------------------------------------------------------------------------- running


def stored_keys(*, username: str | None = None) -> Iterator[tuple[ApiCredential, str]]:
    """One credential per distinct stored key (the most recently verified), with the
    key; keys that can't be decrypted are skipped (the user must enter them again)."""
    credentials = ApiCredential.objects.filter(user__is_active=True).order_by(
        "-verified_at", "-updated_at"
    )
    if username is not None:
        credentials = credentials.filter(user__username=username)
    digests: set[str] = set()
    for credential in credentials:
        try:
            api_key = credential.get_key()
        except crypto.UndecryptableError:
            logger.warning("Inventory sync: stored key #%s can't be decrypted", credential.pk)
            continue
        register_secret(api_key)
        digest = crypto.key_digest(api_key)
        if digest not in digests:
            digests.add(digest)
            yield credential, api_key


def sync_all(*, username: str | None = None) -> list[KeyResult]:
    """Sync every distinct stored key (or ``username``'s), one list call each."""
    return [sync_key(credential, api_key) for credential, api_key in stored_keys(username=username)]


@sensitive_variables("api_key")
def sync_key(credential: ApiCredential, api_key: str) -> KeyResult:
    """List the key's models and compare them with its workspace's snapshot."""
    result = KeyResult(credential=credential.key_masked, status="synced")
    started_at, started_seq = timezone.now(), _head_seq()
    try:
        entries = remote.ModelsApi(api_key=api_key).list_model_entries()
    except remote.ModelsApiError as exc:
        result.status, result.message = "failed", exc.message
        return result
    finished_at, finished_seq = timezone.now(), _head_seq()
    seen, positions, unreadable = _fine_tuned(entries)
    result.models = len(seen)
    if not entries:
        # Mistral always lists its base models: an empty list is not an answer to trust.
        result.status, result.message = "failed", "Mistral sent an empty list."
        return result
    listing = _Listing(
        credential,
        crypto.key_digest(api_key),
        entries,
        seen,
        positions,
        unreadable,
        started_at,
        started_seq,
        finished_at,
    )
    with transaction.atomic():
        head = audit_append.lock_head()  # one comparison at a time, and no append in between
        _compare(listing, finished_seq, result, head)
    return result


_HEAD_SEQ: Final = (
    f"SELECT seq FROM {connection.ops.quote_name(AuditChainHead._meta.db_table)} "  # noqa: S608
    "WHERE id = 1"
)


def _head_seq() -> int:
    """The audit chain's head ``seq`` (a plain cursor: the ORM's query took 1.2 ms)."""
    with connection.cursor() as cursor:
        cursor.execute(_HEAD_SEQ)
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


@dataclass(slots=True)
class _Listing:
    credential: ApiCredential
    digest: str
    entries: remote.ListedEntries
    seen: dict[str, Row]
    positions: dict[str, int]
    unreadable: set[str]
    started_at: datetime
    started_seq: int
    finished_at: datetime

    def seen_model(self, model_id: str) -> Seen:
        """A listed model with its entry as sent (only for those that appeared or changed)."""
        _, name, description, archived = self.seen[model_id]
        entry = self.entries.sent(self.positions[model_id])
        return Seen(entry, model_id, name, description, archived)


# --------------------------------------------------------------------------- comparing


def _workspace(listing: _Listing) -> SyncWorkspace:
    """The workspace the listed models belong to (the one most of a sample of them is
    in), else the key's, else a new one; the key is filed under it."""
    known = SyncKey.objects.select_related("workspace").filter(digest=listing.digest).first()
    sample = [*listing.seen, *listing.unreadable][:SAMPLE]
    counts = Counter(
        ModelSnapshot.objects.filter(model_id__in=sample).values_list("workspace_id", flat=True)
    )
    workspace_id = (
        counts.most_common(1)[0][0] if counts else (known.workspace_id if known else None)
    )
    if known is not None and known.workspace_id == workspace_id:
        workspace = known.workspace  # read with the key: the usual case, no query
    elif workspace_id is not None:
        workspace = SyncWorkspace.objects.get(pk=workspace_id)
    else:
        workspace = SyncWorkspace.objects.create()
    if known is None:
        known = SyncKey(digest=listing.digest, workspace=workspace)
    known.workspace = workspace
    known.credential_masked = listing.credential.key_masked
    known.synced_at = listing.finished_at
    known.save()
    return workspace


def _compare(listing: _Listing, finished_seq: int, result: KeyResult, head: AuditChainHead) -> None:
    """Compare the list with the workspace's snapshot, record what the dashboard does
    not explain, and keep the list as the new snapshot. ``head``: the audit chain's head,
    locked for the comparison, which the entries are appended to."""
    workspace = _workspace(listing)
    result.workspace = workspace.pk
    previous_at = workspace.list_started_at
    if previous_at is not None and previous_at >= listing.started_at:
        result.status = "stale"
        return
    known = kept_snapshots.get(workspace) or _snapshot_rows(workspace)
    listed, position = listing.seen, listing.positions.__getitem__
    # The ids of the rows that differ, found by hashing both sides in C: the Python
    # below sees only the models that appeared, changed or vanished.
    differ = {row[0] for row in set(known.values()).symmetric_difference(listed.values())}
    new = [listing.seen_model(i) for i in sorted(differ - known.keys(), key=position)]
    changed = [
        (known[i], listing.seen_model(i))
        for i in sorted(differ & known.keys() & listed.keys(), key=position)
    ]
    gone = [known[i] for i in sorted((differ & known.keys()) - listed.keys() - listing.unreadable)]
    stored = _stored(workspace, [row[0] for row, _ in changed] + [row[0] for row in gone])
    entries: list[AuditEntry] = []
    if previous_at is None:
        result.status = "baseline"
    else:
        dashboard = sync_entries.dashboard_changes(
            started_seq=workspace.list_started_seq or 0,
            started_at=previous_at,
            finished_seq=finished_seq,
        )
        recorder = sync_entries.Recorder(
            listing.credential,
            previous_at=previous_at,
            seen_at=listing.finished_at,
            dashboard=dashboard,
        )
        entries = [recorder.appeared(seen) for seen in new]
        for row, seen in changed:
            entries.extend(recorder.changed(row, seen, stored[row[0]].card))
        for row in gone:
            if (entry := recorder.vanished(row, stored[row[0]].card)) is not None:
                entries.append(entry)
        result.explained = recorder.explained
    _save_snapshot(
        workspace,
        new,
        [(stored[row[0]].pk, seen) for row, seen in changed],
        [stored[row[0]].pk for row in gone],
    )
    audit.append_many(entries, head=head)
    result.recorded = len(entries)
    # The snapshot as it now stands: the listed rows, and the rows of listed models that
    # could not be compared, kept as they were.
    kept = {i: known[i] for i in listing.unreadable if i in known and i not in listed}
    after_commit(kept_snapshots.keeper(workspace.pk, listing.started_at, {**kept, **listed}))
    workspace.list_started_at, workspace.list_finished_at = listing.started_at, listing.finished_at
    workspace.list_started_seq = listing.started_seq
    workspace.credential_masked = listing.credential.key_masked
    workspace.model_count = len(listing.seen) + len(listing.unreadable)
    workspace.save()


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the sync's transaction commits (never if it rolls back)."""
    transaction.on_commit(callback)


class KeptSnapshots:
    """The snapshot each workspace was left with by the last sync this process
    committed, so that the next sync of it here compares with that instead of reading
    the rows back (10,000 of them: 8-10 ms on PostgreSQL, the comparison's largest
    part). It is taken only while the workspace still carries that sync's
    ``list_started_at``: snapshot rows are written by syncs alone, each under the audit
    head's lock, and each moves it; a sync in another process, or one that rolled back,
    leaves this copy unused. A few workspaces are kept (a 10,000-model one is about
    3 MB)."""

    def __init__(self, max_workspaces: int = 4) -> None:
        self.max_workspaces = max_workspaces
        self._kept: OrderedDict[int, tuple[datetime, dict[str, Row]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, workspace: SyncWorkspace) -> dict[str, Row] | None:
        with self._lock:
            kept = self._kept.get(workspace.pk)
        if kept is None or workspace.list_started_at is None:
            return None
        started_at, rows = kept
        return rows if started_at == workspace.list_started_at else None

    def keeper(
        self, workspace_id: int, started_at: datetime, rows: dict[str, Row]
    ) -> Callable[[], None]:
        """What keeps ``rows`` as the snapshot the sync started at ``started_at`` left."""

        def keep() -> None:
            with self._lock:
                self._kept[workspace_id] = (started_at, rows)
                self._kept.move_to_end(workspace_id)
                while len(self._kept) > self.max_workspaces:
                    self._kept.popitem(last=False)

        return keep

    def reset(self) -> None:
        with self._lock:
            self._kept.clear()


kept_snapshots = KeptSnapshots()


_TABLE: Final = connection.ops.quote_name(ModelSnapshot._meta.db_table)
_SNAPSHOT: Final = (
    f"SELECT model_id, name, description, archived FROM {_TABLE} WHERE workspace_id = %s"  # noqa: S608
)


def _snapshot_rows(workspace: SyncWorkspace) -> dict[str, Row]:
    """The workspace's snapshot by model id, each row as ``_fine_tuned`` makes them. A
    plain cursor: the ORM's row building took over a quarter of the comparison's time
    at 10,000 rows (both drivers give ``archived`` as a bool: Django registers SQLite's
    converter for the column type)."""
    with connection.cursor() as cursor:
        cursor.execute(_SNAPSHOT, [workspace.pk])
        rows = cursor.fetchall()
    return dict(zip(map(itemgetter(0), rows), rows, strict=True))


@dataclass(frozen=True, slots=True)
class _Stored:
    pk: int
    card: dict[str, Any]


def _stored(workspace: SyncWorkspace, model_ids: list[str]) -> dict[str, _Stored]:
    """The primary keys and stored cards of these snapshot rows (the changed and
    vanished ones only)."""
    stored: dict[str, _Stored] = {}
    rows = ModelSnapshot.objects.filter(workspace=workspace)
    for start in range(0, len(model_ids), BATCH):
        chunk = rows.filter(model_id__in=model_ids[start : start + BATCH])
        for model_id, pk, card in chunk.values_list("model_id", "pk", "card"):
            stored[model_id] = _Stored(pk, card)
    return stored


def _save_snapshot(
    workspace: SyncWorkspace, new: list[Seen], changed: list[tuple[int, Seen]], gone: list[int]
) -> None:
    """Bulk writes: the appeared models, the changed ones and the vanished ones (these
    two by primary key)."""
    now = timezone.now()
    ModelSnapshot.objects.bulk_create(
        [_snapshot(workspace, seen, now) for seen in new], batch_size=BATCH
    )
    _update([_snapshot(workspace, seen, now, pk=pk) for pk, seen in changed])
    for start in range(0, len(gone), BATCH):
        ModelSnapshot.objects.filter(pk__in=gone[start : start + BATCH]).delete()
    if len(new) >= ANALYZE_AFTER and connection.vendor == "postgresql":
        _analyze()


def _analyze() -> None:
    """Refresh PostgreSQL's statistics of the snapshot table after a bulk load (what its
    documentation advises): until autovacuum gets to it, the planner knows nothing of
    the rows just written and answers the workspace lookup (``_workspace``: a sample of
    ids) by scanning the whole table, 4-7 ms at 10,000 rows instead of 0.3 with the
    index. ANALYZE may run in a transaction and blocks neither reads nor writes."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {_TABLE}")


_UPDATED: Final = [
    cast(Field[Any, Any], ModelSnapshot._meta.get_field(name))
    for name in ("name", "description", "archived", "card", "seen_at")
]
_UPDATE: Final = "UPDATE {} SET {} WHERE id = %s".format(  # noqa: S608  # names only
    _TABLE, ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in _UPDATED)
)


def _update(rows: list[ModelSnapshot]) -> None:
    """One UPDATE by primary key per changed row, sent together (``executemany``:
    psycopg pipelines them), each value as its field prepares it for the database.
    Django's ``bulk_update`` compiled a CASE per field: 4.5 ms for five rows."""
    if not rows:
        return
    params = [
        [field.get_db_prep_save(getattr(row, field.attname), connection) for field in _UPDATED]
        + [row.pk]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_UPDATE, params)


def _snapshot(
    workspace: SyncWorkspace, seen: Seen, now: datetime, *, pk: int | None = None
) -> ModelSnapshot:
    return ModelSnapshot(
        pk=pk,
        workspace=workspace,
        model_id=seen.model_id,
        name=seen.name,
        description=seen.description,
        archived=seen.archived,
        card=seen.snapshot(),
        seen_at=now,
    )
