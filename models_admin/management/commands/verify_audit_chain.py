"""Check the audit log's hash chain; exit non-zero naming the first bad entry."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from models_admin import audit


class Command(BaseCommand):
    help = (
        "Walk the audit log in order and check every entry's sequence number, link to the "
        "previous entry and HMAC. Exits 0 when the chain is intact, 1 naming the first "
        "entry that was altered, removed or reordered."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit.verify_chain()
        if not report.ok:
            raise CommandError(
                f"Audit chain BROKEN at entry #{report.first_bad_seq}: {report.problem}. "
                f"Entries #1 to #{report.last_seq} verified."
            )
        self.stdout.write(
            self.style.SUCCESS(f"Audit chain intact: {report.checked} entries verified.")
        )
