"""The access generation (models_admin/access.py): one row, bumped by every change to
users, groups, permissions and stored keys."""

from django.db import migrations, models


def create_row(apps, schema_editor):
    apps.get_model("models_admin", "AccessGeneration").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [
        ("models_admin", "0008_inventory_sync"),
    ]

    operations = [
        migrations.CreateModel(
            name="AccessGeneration",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("value", models.PositiveBigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(create_row, migrations.RunPython.noop),
    ]
