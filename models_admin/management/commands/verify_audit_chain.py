"""Check the audit log's hash chain, and that it still reaches the given checkpoints;
exit non-zero naming the first problem."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from models_admin import audit_chain, checkpoints


class Command(BaseCommand):
    help = (
        "Walk the audit log in order and check every entry's sequence number, link to the "
        "previous entry and HMAC; with --checkpoint FILE (any number), also that the log "
        "still reaches each signed checkpoint and agrees with it, which catches removed "
        "last entries and an emptied log. Exits 0 when all is intact, 1 naming the problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            metavar="FILE",
            help="a checkpoint file (downloaded, or log lines); may be given many times",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            anchors = [c for path in options["checkpoint"] for c in checkpoints.read(path)]
        except (OSError, checkpoints.InvalidCheckpoint) as exc:
            raise CommandError(f"Can't use the checkpoint: {exc}") from exc
        report = audit_chain.verify_chain()
        if not report.ok:
            raise CommandError(
                f"Audit chain BROKEN at entry #{report.first_bad_seq}: {report.problem}. "
                f"Entries #1 to #{report.last_seq} verified."
            )
        if problems := checkpoints.verify(anchors):
            raise CommandError("Audit log BROKEN: " + "; ".join(problems) + ".")
        against = f", reaching {len(anchors)} checkpoint(s)" if anchors else ""
        self.stdout.write(
            self.style.SUCCESS(f"Audit chain intact: {report.checked} entries verified{against}.")
        )
