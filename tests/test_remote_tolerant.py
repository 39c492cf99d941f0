"""Issue 11 on the client: odd cards, answers to changes that break the contract, and
Cloudflare's 520-524, over real HTTP against the sandbox."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from models_admin import remote
from tests.helpers import add_odd_cards
from tests.test_remote import KEY, FakeTime, first_fine_tuned, make_api


def timeless(card: remote.ModelCard) -> remote.ModelCard:
    return msgspec.structs.replace(card, created=0) if card.type == "base" else card


CLOUDFLARE = [520, 521, 522, 523, 524]


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def api(sandbox, fake_time) -> remote.ModelsApi:
    api = make_api(sandbox.url, fake_time)
    # Lists with odd cards are larger: no read timeout on a busy machine.
    api.timeout = httpx.Timeout(10)
    return api


class TestOddCards:
    def test_the_list_works_and_flags_each_odd_card(self, api, sandbox, caplog):
        add_odd_cards(sandbox, KEY)

        cards = api.list_models()

        by_name = {card.name: card for card in cards}
        assert by_name["odd-null-job"].problems == ("job",)
        assert by_name["odd-no-root"].problems == ("root",)
        assert by_name["odd-archived-yes"].problems == ("archived",)
        assert by_name["odd-no-root"].problem_message == "Mistral sent an incomplete card: root"
        assert {card.name for card in cards.flagged} == {
            "odd-null-job",
            "odd-no-root",
            "odd-archived-yes",
        }
        assert "Mistral sent incomplete cards" in caplog.text

    def test_the_rest_of_the_list_is_untouched(self, api, sandbox):
        before = api.list_models()
        add_odd_cards(sandbox, KEY)

        after = api.list_models()

        # (A base model's ``created`` is the time of the response, as Mistral's is.)
        assert list(map(timeless, after[: len(before)])) == list(map(timeless, before))
        assert all(card.problems == () for card in before)

    def test_a_card_without_an_id_is_left_out_and_said(self, api, sandbox):
        add_odd_cards(sandbox, KEY)

        cards = api.list_models()

        assert "odd-no-id" not in {card.name for card in cards}
        assert len(cards.problems) == 1
        assert "without a usable id" in cards.problems[0]

    def test_unknown_types_and_fields_are_kept(self, api, sandbox):
        odd = add_odd_cards(sandbox, KEY)

        card = api.retrieve_model(odd["odd-unknown-type"]["id"])

        assert isinstance(card, remote.UnknownModelCard) and card.type == "voice-agent"
        assert dict(card.extra)["voices"] == ["alto"] and card.problems == ()
        assert dict(card.extra)["job"] == odd["odd-unknown-type"]["job"]

    def test_retrieve_returns_the_flagged_card(self, api, sandbox):
        odd = add_odd_cards(sandbox, KEY)

        card = api.retrieve_model(odd["odd-null-job"]["id"])

        assert isinstance(card, remote.FineTunedModelCard)
        assert (card.problems, card.job, card.root) == (("job",), "", "open-mistral-7b")

    def test_missing_fields_injected_by_fault_flag_every_card(self, api, sandbox):
        sandbox.state.faults.set(drop_fields=["root"], match="^GET /v1/models$")

        cards = api.list_models()

        fine_tuned = [card for card in cards if card.is_fine_tuned]
        assert fine_tuned and all(card.problems == ("root",) for card in fine_tuned)
        assert all(card.problems == () for card in cards if card.is_base)


class TestAnswersToChanges:
    def test_an_update_answer_without_unused_fields_is_a_success(self, api, sandbox):
        model_id = first_fine_tuned(sandbox)["id"]
        sandbox.state.faults.set(drop_fields=["workspace_id", "root_version", "created"])

        updated = api.update_model(model_id, name="renamed")

        assert (updated.id, updated.name) == (model_id, "renamed")
        assert updated.problems == ("created", "workspace_id", "root_version")

    def test_an_update_answer_without_archived_is_ambiguous(self, api, sandbox):
        model_id = first_fine_tuned(sandbox)["id"]
        sandbox.state.faults.set(drop_fields=["archived"])

        with pytest.raises(remote.MalformedResponse) as info:
            api.update_model(model_id, name="renamed")

        assert info.value.ambiguous is True
        assert "may have happened" in info.value.message
        assert info.value.upstream_message == "updated model.archived should be a boolean"
        # It did happen: the sandbox made the change before the answer lost its field.
        assert sandbox.state.workspace(KEY).get(model_id)["name"] == "renamed"

    def test_archive_reads_only_archived(self, api, sandbox):
        model_id = first_fine_tuned(sandbox)["id"]
        sandbox.state.faults.set(drop_fields=["id", "object"])

        result = api.archive_model(model_id)

        assert result == remote.ArchiveResult(model_id, True)

    def test_an_unreadable_archive_answer_is_ambiguous(self, api, sandbox):
        model_id = first_fine_tuned(sandbox)["id"]
        sandbox.state.faults.set(malformed_times=1, malformed_kind="html", match="/archive$")

        with pytest.raises(remote.MalformedResponse) as info:
            api.archive_model(model_id)

        assert info.value.ambiguous is True

    def test_a_delete_answer_without_an_id_is_ambiguous(self, api, sandbox):
        model_id = first_fine_tuned(sandbox)["id"]
        sandbox.state.faults.set(drop_fields=["id"])

        with pytest.raises(remote.MalformedResponse) as info:
            api.delete_model(model_id)

        assert info.value.ambiguous is True
        assert sandbox.state.workspace(KEY).get(model_id) is None

    def test_an_unreadable_list_is_not_ambiguous(self, api, sandbox):
        sandbox.state.faults.set(malformed_times=1, malformed_kind="html")

        with pytest.raises(remote.MalformedResponse) as info:
            api.list_models()

        assert info.value.ambiguous is False
        assert "could not read" in info.value.message


class TestCloudflare:
    @pytest.mark.parametrize("status", CLOUDFLARE)
    def test_reads_are_retried_like_502(self, api, sandbox, fake_time, status):
        sandbox.state.faults.set(fail_status=status, fail_times=2)

        cards = api.list_models()

        assert cards
        assert len(sandbox.state.requests) == 3
        assert len(fake_time.sleeps) == 2

    @pytest.mark.parametrize("status", CLOUDFLARE)
    def test_the_message_is_readable_never_the_page(self, api, sandbox, status):
        sandbox.state.faults.set(fail_status=status, fail_times=10)

        with pytest.raises(remote.ApiUnavailable) as info:
            api.retrieve_model(first_fine_tuned(sandbox)["id"])

        assert info.value.status == status
        assert info.value.message == (
            f"Mistral could not be reached through its network edge (HTTP {status}). "
            "Try again in a moment."
        )
        assert info.value.upstream_message is None  # the HTML page is dropped
        assert "<" not in str(info.value)

    @pytest.mark.parametrize("status", CLOUDFLARE)
    def test_a_change_that_met_one_is_ambiguous(self, api, sandbox, status):
        model_id = first_fine_tuned(sandbox)["id"]
        sandbox.state.faults.set(fail_status=status, fail_times=10, match="^PATCH ")

        with pytest.raises(remote.ApiUnavailable) as info:
            api.update_model(model_id, name="renamed")

        assert info.value.ambiguous is True
        assert len(sandbox.state.requests) == 4

    def test_a_change_retried_past_one_succeeds(self, api, sandbox):
        model_id = first_fine_tuned(sandbox)["id"]
        sandbox.state.faults.set(fail_status=524, fail_times=1, match="/archive$")

        result = api.archive_model(model_id)

        assert result.archived is True
        assert [r.method for r in sandbox.state.requests] == ["POST", "POST"]

    def test_a_delete_whose_retry_finds_it_gone_is_confirmed(self, api, sandbox):
        model_id = first_fine_tuned(sandbox)["id"]
        sandbox.state.faults.set(fail_status=524, fail_times=1, hang_after=False)
        # The 524 happens before the sandbox acts; delete it meanwhile, as the origin would.
        sandbox.state.workspace(KEY).delete(model_id)

        result = api.delete_model(model_id)

        assert result.confirmed_by_retry is True
