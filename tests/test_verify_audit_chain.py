"""``manage.py verify_audit_chain --checkpoint FILE``: the files an operator may hand it
(not a checkpoint, none in the file, the empty log's) and a log replaced wholesale by
another valid chain."""

from __future__ import annotations

import pytest

from models_admin.models import AuditEntry
from tests.test_audit_checkpoints import (
    append_events,
    keep_checkpoint,
    run_verify,
    sql,
    triggers_off,  # noqa: F401 (a fixture)
)


class TestCheckpointFiles:
    @pytest.mark.parametrize(
        ("text", "said"),
        [
            ("server started\nnothing to see here\n", "no checkpoint in this file"),
            ('{"seq": "two", "hash": "x"}\n', "Can't use the checkpoint: not a checkpoint"),
        ],
        ids=["no-checkpoint", "not-a-checkpoint"],
    )
    def test_a_file_without_a_usable_checkpoint_is_refused(self, alice, tmp_path, text, said):
        append_events(alice, 1)
        given = tmp_path / "given.log"
        given.write_text(text)

        code, message = run_verify(given)

        assert code == 1
        assert said in message

    def test_the_empty_logs_checkpoint_is_reached_by_any_later_log(self, alice, tmp_path):
        empty = keep_checkpoint(tmp_path, "empty.json")
        append_events(alice, 2)

        code, said = run_verify(empty)

        assert code == 0, said
        assert "2 entries verified, reaching 1 checkpoint(s)" in said


class TestReplacedLog:
    @pytest.mark.usefixtures("triggers_off")
    def test_a_new_valid_chain_in_place_of_the_old_disagrees_with_its_checkpoint(
        self, alice, bob, tmp_path
    ):
        append_events(alice, 2)
        kept = keep_checkpoint(tmp_path)
        sql("DELETE FROM models_admin_auditentry")
        sql("DELETE FROM models_admin_auditchainhead")
        append_events(bob, 3)  # a chain of its own, intact from #1

        code, said = run_verify(kept)

        assert AuditEntry.objects.count() == 3
        assert run_verify()[0] == 0  # the chain alone can't see it
        assert code == 1
        assert "entry #2 disagrees with the checkpoint" in said
