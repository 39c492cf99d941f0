"""Make the audit table append-only in the database itself (see models_admin/audit_sql.py)."""

from django.db import migrations

from models_admin import audit_sql


def install(apps, schema_editor):
    model = apps.get_model("models_admin", "AuditEntry")
    audit_sql.install(schema_editor.connection, [f.column for f in model._meta.local_fields])


def drop(apps, schema_editor):
    audit_sql.drop(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("models_admin", "0002_audit_log")]

    operations = [migrations.RunPython(install, drop)]
