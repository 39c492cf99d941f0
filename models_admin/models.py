"""Database models: each user's encrypted Mistral API key, and the permissions of the roles."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from models_admin import crypto, storable


def mask_key(api_key: str) -> str:
    """What may be shown of a key once it is saved: a few characters at each end."""
    if len(api_key) >= 20:
        return f"{api_key[:4]}…{api_key[-4:]}"
    if len(api_key) >= 12:
        return f"{api_key[:2]}…{api_key[-2:]}"
    return "…"


class ApiCredential(models.Model):
    """A user's Mistral API key, encrypted at rest (see crypto.py); shown only masked."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_credential"
    )
    key_encrypted = models.TextField(editable=False)
    key_masked = models.CharField("key", max_length=16, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    verified_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When Mistral last accepted this key."
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.user} ({self.key_masked})"

    def set_key(self, api_key: str) -> None:
        self.key_encrypted = crypto.encrypt(api_key)
        self.key_masked = mask_key(api_key)

    def get_key(self) -> str:
        """The plaintext key. Raises crypto.UndecryptableError."""
        return crypto.decrypt(self.key_encrypted)

    @property
    def is_decryptable(self) -> bool:
        try:
            self.get_key()
        except crypto.UndecryptableError:
            return False
        return True


class Access(models.Model):
    """Holds the app's permissions (no table). Roles (roles.py) are groups of these."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("browse_models", "Browse models"),
            ("change_models", "Rename, describe, archive and unarchive fine-tuned models"),
            ("delete_models", "Delete fine-tuned models"),
            ("manage_team", "Manage team members and their roles"),
        ]

    def __str__(self) -> str:
        return "permissions"


class AccessGeneration(models.Model):
    """One row whose number grows with every change to who may do what: users, groups,
    permissions, their links, and stored API keys (models_admin/access.py). It is read
    with the user on every request, so what a warm page keeps in the cache about the
    user (permissions, which inventory their key reads) is checked against it, without
    a query of its own and without trusting the cache to have been told."""

    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"access generation {self.value}"


class AuditQuerySet(models.QuerySet["AuditEntry"]):
    """Append-only: bulk updates and deletes are refused (the database refuses them too)."""

    def update(self, **kwargs: object) -> int:
        raise AppendOnlyError("Audit entries are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit entries are append-only.")


class AppendOnlyError(Exception):
    pass


class AuditEntry(models.Model):
    """One line of the tamper-evident audit log (modelled on Django admin's LogEntry).

    Changes are written ahead: an ``attempt`` entry before the upstream call, then an
    ``outcome`` entry linked to it. Self-contained facts (a denial, a role change, an
    export) are single ``event`` entries. Each entry carries its position in the chain
    (``seq``), the previous entry's hash and its own HMAC-SHA256 (see audit.py), so a
    changed, removed or reordered row is detected by ``manage.py verify_audit_chain``.
    Database triggers (migration 0003) refuse UPDATE and DELETE."""

    class Kind(models.TextChoices):
        ATTEMPT = "attempt", "Attempt"
        OUTCOME = "outcome", "Outcome"
        EVENT = "event", "Event"
        # A change made outside the dashboard (Mistral's console, a script), seen by the
        # inventory sync (sync.py): self-contained, like an event.
        OUTSIDE = "outside", "Outside change"

    class Action(models.TextChoices):
        MODEL_DELETE = "model.delete", "Delete model"
        MODEL_UPDATE = "model.update", "Rename / describe model"
        MODEL_ARCHIVE = "model.archive", "Archive model"
        MODEL_UNARCHIVE = "model.unarchive", "Unarchive model"
        MODEL_APPEAR = "model.appear", "Model appeared"
        API_KEY_ADD = "api_key.add", "Add API key"
        API_KEY_REPLACE = "api_key.replace", "Replace API key"
        API_KEY_REMOVE = "api_key.remove", "Remove API key"
        MEMBER_ADD = "member.add", "Add member"
        MEMBER_ROLE = "member.role", "Change role"
        MEMBER_DEACTIVATE = "member.deactivate", "Deactivate member"
        MEMBER_REACTIVATE = "member.reactivate", "Reactivate member"
        MEMBER_PASSWORD_LINK = "member.password_link", "Issue set-password link"
        AUDIT_EXPORT = "audit.export", "Export audit log"
        USER_CREATE = "user.create", "Create user"
        USER_CHANGE = "user.change", "Change user"
        USER_DELETE = "user.delete", "Delete user"
        GROUP_CREATE = "group.create", "Create group"
        GROUP_CHANGE = "group.change", "Change group"
        GROUP_DELETE = "group.delete", "Delete group"

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        DENIED = "denied", "Denied"
        UNKNOWN = "unknown", "Unknown"
        # Final: the evidence (a read-back, later entries, the current state) cannot
        # tell whether the change happened; reconcile_audit does not look again.
        UNDETERMINED = "undetermined", "Undetermined"

    seq = models.PositiveBigIntegerField("#", unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, editable=False)
    attempt = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="outcomes",
        editable=False,
    )
    # The link goes when the user is deleted; the snapshot below keeps who it was.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    actor_username = models.CharField(max_length=150, blank=True, editable=False)
    actor_email = models.CharField(max_length=254, blank=True, editable=False)
    actor_role = models.CharField(max_length=20, blank=True, editable=False)
    action = models.CharField(max_length=30, choices=Action.choices, editable=False)
    target_id = models.CharField(max_length=300, blank=True, editable=False)
    target_name = models.CharField(max_length=300, blank=True, editable=False)
    before = models.JSONField(
        null=True, blank=True, editable=False, help_text="The model card before the change."
    )
    changes = models.JSONField(
        default=dict, blank=True, editable=False, help_text="{field: [old, new]}"
    )
    details = models.JSONField(default=dict, blank=True, editable=False)
    reason = models.TextField(blank=True, editable=False)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, editable=False)
    upstream_status = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    message = models.TextField(blank=True, editable=False)
    ip = models.GenericIPAddressField(null=True, blank=True, editable=False)
    user_agent = models.CharField(max_length=400, blank=True, editable=False)
    request_id = models.CharField(max_length=64, blank=True, editable=False)
    upstream_request_id = models.CharField(max_length=100, blank=True, editable=False)
    credential_id = models.BigIntegerField(null=True, blank=True, editable=False)
    credential_masked = models.CharField(max_length=16, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)
    # Which fields the hash covers (audit_hash.HASHED_FIELDS_BY_VERSION); entries written
    # before version 2 keep verifying as they were written.
    hash_version = models.PositiveSmallIntegerField(default=1, editable=False)
    # The actor's id, hashed (version 2), kept when ``actor`` is cleared by a deletion:
    # the link may only ever be this id or nothing.
    actor_pk = models.BigIntegerField(null=True, blank=True, editable=False)

    objects = AuditQuerySet.as_manager()

    class Meta:
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        ordering = ["-seq"]
        default_permissions = ("view",)
        permissions = [("export_auditentry", "Export the audit log")]
        indexes = [
            models.Index(fields=["action", "-seq"], name="audit_action_seq"),
            models.Index(fields=["target_id", "-seq"], name="audit_target_seq"),
            models.Index(fields=["actor_username", "-seq"], name="audit_actor_seq"),
            models.Index(fields=["kind", "-seq"], name="audit_kind_seq"),
            # The inventory sync's query of the last hour's attempts (dashboard_changes).
            models.Index(fields=["kind", "created_at"], name="audit_kind_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.get_action_display()} {self.target_id} ({self.outcome})"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit entries are append-only.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit entries are append-only.")


class AuditChainHead(models.Model):
    """The last entry of the chain (one row). Appends lock it, which serialises them;
    ``verify_audit_chain`` compares it with the last entry, so removing entries from
    the end of the log is detected too."""

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"audit chain head #{self.seq}"


class BulkJob(models.Model):
    """One bulk action over many models, run by task-queue workers with bounded
    concurrency. Each item goes through the same service as a single action (and is
    audited alone); workers claim items with a lease (see bulk_run.py)."""

    class Action(models.TextChoices):
        ARCHIVE = "archive", "Archive"
        UNARCHIVE = "unarchive", "Unarchive"
        DELETE = "delete", "Delete"

    class State(models.TextChoices):
        DRAFT = "draft", "Waiting for confirmation"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="bulk_jobs"
    )
    action = models.CharField(max_length=10, choices=Action.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    reason = models.TextField(blank=True)
    # Where the request came from, for the audit entries the background run writes.
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When a worker last worked on it (claimed, finished or renewed an item).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} of {self.pk}"


class BulkItem(models.Model):
    """One model of a bulk job. A worker claims it (``worker``, ``lease_until``) and
    renews the lease while it runs; an expired lease means its worker died, and another
    worker takes the item over (reading the model back first)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"  # rate-limited; claimable again at retry_at
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    # From Mistral: stored safely (NUL bytes; names have no length limit we know of).
    model_id = storable.StorableCharField(max_length=300)
    model_name = storable.StorableTextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    message = models.TextField(blank=True)
    # The model's card as the job was prepared (audit.card_snapshot): what a worker
    # starts from while it is as fresh as a cached inventory would be.
    card = models.JSONField(null=True, blank=True)
    worker = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    tries = models.PositiveSmallIntegerField(default=0)  # claims, takeovers included
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="bulk_item_position")
        ]
        indexes = [
            models.Index(fields=["job", "status"], name="bulk_item_job_status"),
            # The workers' scheduler looks for claimable items across jobs.
            models.Index(fields=["status"], name="bulk_item_status"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} ({self.status})"


class ScheduledRun(models.Model):
    """One period of one scheduled upkeep task (upkeep.py). The unique (name, period)
    pair is what makes a task run once per period across every worker and host."""

    name = models.CharField(max_length=50)
    period_start = models.DateTimeField()
    enqueued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True)
    result = models.TextField(blank=True)

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["name", "period_start"], name="scheduled_run_once")
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.period_start:%Y-%m-%d %H:%M}"


class SyncWorkspace(models.Model):
    """A Mistral workspace as the inventory sync knows it (sync.py): every stored key
    whose list shows the same fine-tuned models is a key of it, and its snapshot is
    compared with each new list, whichever of its keys read it."""

    created_at = models.DateTimeField(default=timezone.now)
    # The last list compared: when it was asked for and read, the audit chain's head
    # just before it was asked for (what the dashboard had recorded by then), and the
    # key that read it.
    list_started_at = models.DateTimeField(null=True, blank=True)
    list_finished_at = models.DateTimeField(null=True, blank=True)
    list_started_seq = models.PositiveBigIntegerField(null=True, blank=True)
    credential_masked = models.CharField(max_length=16, blank=True)
    model_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"workspace #{self.pk}"


class SyncKey(models.Model):
    """A distinct stored key (its HMAC, never the key) and the workspace it lists."""

    digest = models.CharField(max_length=64, unique=True)
    workspace = models.ForeignKey(SyncWorkspace, on_delete=models.CASCADE, related_name="keys")
    credential_masked = models.CharField(max_length=16, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.credential_masked} ({self.workspace})"


class ModelSnapshot(models.Model):
    """One fine-tuned model as the last sync of its workspace saw it."""

    workspace = models.ForeignKey(SyncWorkspace, on_delete=models.CASCADE, related_name="snapshots")
    model_id = storable.StorableCharField(max_length=300)
    name = storable.StorableTextField(null=True, blank=True)
    description = storable.StorableTextField(null=True, blank=True)
    archived = models.BooleanField(default=False)
    card = models.JSONField(default=dict, help_text="audit.card_snapshot of the card seen.")
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "model_id"], name="snapshot_model_once")
        ]
        indexes = [models.Index(fields=["model_id"], name="snapshot_model_id")]

    def __str__(self) -> str:
        return str(self.model_id)
