"""Resolve audit attempts whose outcome is unknown by looking at the model upstream."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from models_admin import reconcile


class Command(BaseCommand):
    help = (
        "Find change attempts with no known outcome (the process died mid-call, or "
        "Mistral's answer was lost and reading the model back did not settle it), weigh "
        "the later entries on the same model and then its current state (read with the "
        "actor's own key), and append the verdict with its evidence: succeeded, failed, "
        "or undetermined when the evidence cannot decide."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--min-age",
            type=int,
            default=300,
            help="only attempts older than this many seconds (younger ones may still be running); default 300",
        )
        parser.add_argument("--dry-run", action="store_true", help="report, append nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = timezone.now() - timedelta(seconds=options["min_age"])
        results = reconcile.reconcile_unknown(older_than=older_than, dry_run=options["dry_run"])
        for result in results:
            self.stdout.write(
                f"  #{result.attempt_seq} {result.action} {result.target_id}: {result.verdict} ({result.note})"
            )
        resolved = sum(1 for r in results if r.verdict != "unknown")
        undetermined = sum(1 for r in results if r.verdict == "undetermined")
        self.stdout.write(
            f"{'Would resolve' if options['dry_run'] else 'Resolved'} {resolved} of {len(results)} unknown attempt(s) "
            f"({undetermined} undetermined); {len(results) - resolved} still unknown."
        )
