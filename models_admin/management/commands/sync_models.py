"""List each stored key's models now and record the changes made outside the dashboard."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from models_admin import sync


class Command(BaseCommand):
    help = (
        "List the models of each distinct stored API key (one list call each), compare "
        "them with the last snapshot of the key's workspace, and append an audit entry "
        "for each change the dashboard's own entries do not explain (a model that "
        "appeared or disappeared, was renamed, re-described, archived or unarchived "
        "outside the dashboard). The task workers run this every MODEL_SYNC_MINUTES."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", metavar="NAME", help="only this user's stored key")

    def handle(self, *args: Any, **options: Any) -> None:
        results = sync.sync_all(username=options["user"])
        if not results and options["user"]:
            raise CommandError(f"{options['user']!r} has no usable stored key.")
        for result in results:
            self.stdout.write(f"  {result}")
        recorded = sum(r.recorded for r in results)
        failed = sum(1 for r in results if r.status == "failed")
        self.stdout.write(
            f"Synced {len(results) - failed} of {len(results)} key(s); "
            f"{recorded} outside change(s) recorded."
        )
        if failed:
            raise CommandError(f"{failed} key(s) could not be listed.")
