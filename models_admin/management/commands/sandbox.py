"""``manage.py sandbox``: serve the Mistral-compatible sandbox API until Ctrl-C.

``manage.py`` hands ``sandbox`` to ``models_admin.sandbox.cli`` before the settings
load, so it runs without DJANGO_DEBUG or secrets; this command is what
``call_command("sandbox", ...)`` finds, with the same arguments.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from models_admin.sandbox import cli


class Command(BaseCommand):
    help = cli.HELP
    # The sandbox needs neither the database nor the rest of the project to be healthy.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        cli.serve(options, self.stdout)
