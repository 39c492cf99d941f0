"""The inventory sync (issue 14): workspaces, their keys and model snapshots; the
``outside`` kind and the ``model.appear`` action of the audit log. Only the choices of
AuditEntry's columns change, but should SQLite rebuild the table, its append-only
triggers would go: they are dropped and installed again around it, as in 0006."""

import django.db.models.deletion
import django.utils.timezone
import models_admin.storable
from django.db import migrations, models

from models_admin import audit_sql


def install(apps, schema_editor):
    model = apps.get_model("models_admin", "AuditEntry")
    audit_sql.install(schema_editor.connection, [f.column for f in model._meta.local_fields])


def drop(apps, schema_editor):
    audit_sql.drop(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("models_admin", "0007_bulk_leases_scheduled_runs"),
    ]

    operations = [
        migrations.CreateModel(
            name="SyncWorkspace",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("list_started_at", models.DateTimeField(blank=True, null=True)),
                ("list_finished_at", models.DateTimeField(blank=True, null=True)),
                ("list_started_seq", models.PositiveBigIntegerField(blank=True, null=True)),
                ("credential_masked", models.CharField(blank=True, max_length=16)),
                ("model_count", models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(drop, install),
        migrations.AlterField(
            model_name="auditentry",
            name="action",
            field=models.CharField(
                choices=[
                    ("model.delete", "Delete model"),
                    ("model.update", "Rename / describe model"),
                    ("model.archive", "Archive model"),
                    ("model.unarchive", "Unarchive model"),
                    ("model.appear", "Model appeared"),
                    ("api_key.add", "Add API key"),
                    ("api_key.replace", "Replace API key"),
                    ("api_key.remove", "Remove API key"),
                    ("member.add", "Add member"),
                    ("member.role", "Change role"),
                    ("member.deactivate", "Deactivate member"),
                    ("member.reactivate", "Reactivate member"),
                    ("member.password_link", "Issue set-password link"),
                    ("audit.export", "Export audit log"),
                    ("user.create", "Create user"),
                    ("user.change", "Change user"),
                    ("user.delete", "Delete user"),
                    ("group.create", "Create group"),
                    ("group.change", "Change group"),
                    ("group.delete", "Delete group"),
                ],
                editable=False,
                max_length=30,
            ),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("attempt", "Attempt"),
                    ("outcome", "Outcome"),
                    ("event", "Event"),
                    ("outside", "Outside change"),
                ],
                editable=False,
                max_length=10,
            ),
        ),
        migrations.RunPython(install, drop),
        migrations.CreateModel(
            name="SyncKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("digest", models.CharField(max_length=64, unique=True)),
                ("credential_masked", models.CharField(blank=True, max_length=16)),
                ("synced_at", models.DateTimeField(blank=True, null=True)),
                (
                    "workspace",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="keys",
                        to="models_admin.syncworkspace",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="ModelSnapshot",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("model_id", models_admin.storable.StorableCharField(max_length=300)),
                ("name", models_admin.storable.StorableTextField(blank=True, null=True)),
                ("description", models_admin.storable.StorableTextField(blank=True, null=True)),
                ("archived", models.BooleanField(default=False)),
                (
                    "card",
                    models.JSONField(
                        default=dict, help_text="audit.card_snapshot of the card seen."
                    ),
                ),
                ("seen_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "workspace",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="snapshots",
                        to="models_admin.syncworkspace",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["model_id"], name="snapshot_model_id")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("workspace", "model_id"), name="snapshot_model_once"
                    )
                ],
            },
        ),
    ]
