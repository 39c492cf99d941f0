"""Re-encrypt every stored API key with the first key of FIELD_ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from models_admin import crypto
from models_admin.models import ApiCredential


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored API key with the first key in FIELD_ENCRYPTION_KEYS, in one "
        "transaction. Afterwards the older encryption keys can be removed from the setting."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would change, write nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        rotated = current = undecryptable = 0
        with transaction.atomic():
            for credential in ApiCredential.objects.select_for_update().order_by("pk"):
                if crypto.is_current(credential.key_encrypted):
                    current += 1
                    continue
                try:
                    token = crypto.rotate(credential.key_encrypted)
                except crypto.UndecryptableError:
                    undecryptable += 1
                    self.stderr.write(
                        f"  cannot decrypt the key of user {credential.user_id} "
                        "(its encryption key is gone): they must enter it again"
                    )
                    continue
                rotated += 1
                if not dry_run:
                    ApiCredential.objects.filter(pk=credential.pk).update(key_encrypted=token)
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        self.stdout.write(
            f"{verb} {rotated}, already current {current}, undecryptable {undecryptable}, "
            f"total {rotated + current + undecryptable}"
        )
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
        # A dry run fails too: it is how to learn, before dropping a key, that some are lost.
        if undecryptable:
            raise CommandError(
                f"{undecryptable} key(s) could not be decrypted with any configured encryption key."
            )
