"""The ``undetermined`` outcome: a final verdict when the evidence cannot tell whether a
change happened. SQLite rebuilds the table to widen the column, which drops its
append-only triggers: they are installed again (see audit_sql)."""

from django.db import migrations, models

from models_admin import audit_sql


def install(apps, schema_editor):
    model = apps.get_model("models_admin", "AuditEntry")
    audit_sql.install(schema_editor.connection, [f.column for f in model._meta.local_fields])


def drop(apps, schema_editor):
    audit_sql.drop(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("models_admin", "0005_security_audit_hash_v2")]

    operations = [
        migrations.RunPython(drop, install),
        migrations.AlterField(
            model_name="auditentry",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("denied", "Denied"),
                    ("unknown", "Unknown"),
                    ("undetermined", "Undetermined"),
                ],
                editable=False,
                max_length=12,
            ),
        ),
        migrations.RunPython(install, drop),
    ]
