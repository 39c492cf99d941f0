"""The audit chain beyond the database: signed checkpoints, every identifying field
hashed (issue 13). Tampering is done the way an attacker with the app's database role
could: triggers dropped, rows deleted, the chain head moved back."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from models_admin import audit, audit_chain, audit_hash, audit_sql, checkpoints
from models_admin.audit import Action, Actor
from models_admin.models import AuditChainHead, AuditEntry
from tests.conftest import make_user


def append_events(user: User, n: int) -> None:
    for i in range(n):
        audit.event(actor=Actor(user), action=Action.MEMBER_ROLE, target_id=f"member{i}")


def run_verify(*files: Path) -> tuple[int, str]:
    out = io.StringIO()
    args = [a for f in files for a in ("--checkpoint", str(f))]
    try:
        call_command("verify_audit_chain", *args, stdout=out)
    except CommandError as exc:
        return 1, str(exc)
    return 0, out.getvalue()


def keep_checkpoint(tmp_path: Path, name: str = "cp.json") -> Path:
    path = tmp_path / name
    call_command("audit_checkpoint", "--output", str(path), stdout=io.StringIO())
    return path


@pytest.fixture
def triggers_off():
    audit_sql.drop(connection)
    yield
    audit_sql.install(connection, [f.column for f in AuditEntry._meta.local_fields])


def sql(statement: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


class TestCheckpoints:
    def test_an_intact_log_reaches_its_checkpoints(self, alice, tmp_path):
        append_events(alice, 3)
        first = keep_checkpoint(tmp_path, "first.json")
        append_events(alice, 2)
        second = keep_checkpoint(tmp_path, "second.json")

        code, said = run_verify(first, second)

        assert code == 0, said
        assert "5 entries verified, reaching 2 checkpoint(s)" in said

    def test_removed_last_entries_with_the_head_moved_back_are_caught(
        self, alice, tmp_path, triggers_off
    ):
        append_events(alice, 10)
        kept = keep_checkpoint(tmp_path)
        seventh = AuditEntry.objects.get(seq=7)

        sql("DELETE FROM models_admin_auditentry WHERE seq > 7")
        sql("UPDATE models_admin_auditchainhead SET seq = 7, hash = %s", seventh.hash)

        assert run_verify()[0] == 0  # the chain alone can't see it
        code, said = run_verify(kept)
        assert code == 1
        assert "no longer reaches checkpoint #10" in said

    def test_an_emptied_log_is_caught(self, alice, tmp_path, triggers_off):
        append_events(alice, 4)
        kept = keep_checkpoint(tmp_path)

        sql("DELETE FROM models_admin_auditentry")
        sql("DELETE FROM models_admin_auditchainhead")

        assert run_verify()[0] == 0  # "intact: 0 entries"
        code, said = run_verify(kept)
        assert code == 1
        assert "no longer reaches checkpoint #4" in said and "ends at #0" in said

    def test_a_rewritten_log_disagrees_with_its_checkpoint(self, alice, tmp_path, triggers_off):
        append_events(alice, 3)
        kept = keep_checkpoint(tmp_path)

        sql("UPDATE models_admin_auditentry SET hash = %s WHERE seq = 3", "f" * 64)

        code, said = run_verify(kept)
        assert code == 1

    def test_checkpoints_from_the_log_lines(self, alice, tmp_path, caplog):
        caplog.set_level(logging.INFO, logger="models_admin.audit")
        append_events(alice, 2)
        checkpoints.write_checkpoint()
        log = tmp_path / "app.log"
        log.write_text("\n".join(["unrelated line", *(r.getMessage() for r in caplog.records)]))

        (checkpoint,) = checkpoints.read(log)

        assert (checkpoint.seq, checkpoint.count) == (2, 2)
        assert run_verify(log)[0] == 0

    def test_a_forged_checkpoint_is_refused(self, alice, tmp_path):
        append_events(alice, 2)
        kept = keep_checkpoint(tmp_path)
        data = json.loads(kept.read_text())
        data["seq"] = 1
        kept.write_text(json.dumps(data))

        code, said = run_verify(kept)

        assert code == 1
        assert "signature does not match" in said

    def test_each_export_writes_a_checkpoint(self, as_alice, caplog):
        caplog.set_level(logging.INFO, logger="models_admin.audit")

        response = as_alice.get(reverse("models_admin:audit_export_csv"))
        b"".join(response.streaming_content)

        (line,) = [r.getMessage() for r in caplog.records if "audit checkpoint" in r.getMessage()]
        checkpoint = checkpoints.Checkpoint.parse(line)
        assert checkpoint.seq == AuditEntry.objects.get(action=Action.AUDIT_EXPORT).seq

    def test_the_checkpoint_directory(self, alice, tmp_path, settings):
        settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "anchors")
        append_events(alice, 1)

        checkpoints.write_checkpoint()

        (path,) = (tmp_path / "anchors").iterdir()
        assert checkpoints.read(path)[0].seq == 1

    @pytest.mark.parametrize("who", ["as_alice", "as_carol"])
    def test_team_admins_and_auditors_download_one(self, request, who):
        client = request.getfixturevalue(who)

        response = client.get(reverse("models_admin:audit_checkpoint"))

        assert response.status_code == 200
        assert "attachment" in response["Content-Disposition"]
        assert checkpoints.Checkpoint.parse(response.content.decode()).valid

    def test_members_cannot(self, as_bob):
        assert as_bob.get(reverse("models_admin:audit_checkpoint")).status_code == 403

    def test_the_audit_page_links_to_it(self, as_alice):
        response = as_alice.get(reverse("models_admin:audit_list"))

        assert reverse("models_admin:audit_checkpoint").encode() in response.content


class TestIdentifyingFieldsAreHashed:
    def test_the_actor_link_pointed_at_someone_else_is_caught(self, alice, triggers_off):
        mallory = make_user("mallory", None)
        append_events(alice, 2)

        sql("UPDATE models_admin_auditentry SET actor_id = %s WHERE seq = 1", mallory.pk)

        report = audit_chain.verify_chain()
        assert not report.ok and report.first_bad_seq == 1
        assert "actor link" in report.problem

    def test_the_actors_id_is_hashed(self, alice, triggers_off):
        append_events(alice, 1)

        sql("UPDATE models_admin_auditentry SET actor_pk = actor_pk + 1")

        assert "altered" in audit_chain.verify_chain().problem

    def test_version_1_entries_still_verify(self, alice):
        # An entry as the first release wrote it: no actor_pk, hash version 1.
        entry = AuditEntry(
            seq=1,
            created_at=timezone.now(),
            kind="event",
            actor=alice,
            actor_username="alice",
            action=Action.MEMBER_ROLE,
            outcome="succeeded",
            prev_hash=audit_hash.GENESIS,
            hash_version=1,
        )
        entry.hash = audit_hash.entry_hash(audit_hash.hash_values(entry, None))
        entry.save()
        AuditChainHead.objects.create(pk=1, seq=1, hash=entry.hash)
        append_events(alice, 1)

        assert audit_chain.verify_chain().ok
        assert list(AuditEntry.objects.order_by("seq").values_list("hash_version", flat=True)) == [
            1,
            2,
        ]
