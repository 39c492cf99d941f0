"""Write a signed checkpoint of the audit log (to the logs, and to a file if asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from models_admin import checkpoints


class Command(BaseCommand):
    help = (
        "Write a signed checkpoint of the audit log (last entry's number and hash, the "
        "number of entries, the time) to the logs as one line, to AUDIT_CHECKPOINT_DIR "
        "when set, and to --output. Keep checkpoints away from the database; "
        "verify_audit_chain --checkpoint FILE checks the log still reaches them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", help="also append the checkpoint to this file")

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = checkpoints.write_checkpoint()
        if options["output"]:
            with Path(options["output"]).open("a") as file:
                file.write(checkpoint.to_line() + "\n")
        self.stdout.write(checkpoint.to_line())
