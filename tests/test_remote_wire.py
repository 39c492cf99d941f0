"""remote.wire: the one-pass reading of a list gives exactly what the tolerant reader
gives, card for card, whatever the body holds (each odd shape below sends the body, or
one entry, down another path), whether the body is decoded whole or entry by entry."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest

from models_admin import remote
from models_admin.remote import wire
from models_admin.remote.cards import model_list_from_json
from models_admin.sandbox import seed

CARDS = seed.inventory("sandbox-wire", 12).cards
BASE = next(c for c in CARDS if c["type"] == "base")
FINE = next(c for c in CARDS if c["type"] == "fine-tuned")


@pytest.fixture(autouse=True, params=["whole", "by entry"])
def reading(request, monkeypatch) -> str:
    """Every test reads its bodies both ways: a body of a few thousand cards is decoded
    in one call, a larger one entry by entry (wire.WHOLE_BODY_MAX)."""
    if request.param == "by entry":
        monkeypatch.setattr(wire, "WHOLE_BODY_MAX", 0)
    return request.param


def changed(card: dict[str, Any], **fields: Any) -> dict[str, Any]:
    card = copy.deepcopy(card)
    for key, value in fields.items():
        if value is ...:
            card.pop(key, None)
        else:
            card[key] = value
    return card


def body(*cards: Any, **envelope: Any) -> bytes:
    return json.dumps({"object": "list", "data": list(cards), **envelope}).encode()


def both(raw: bytes) -> tuple[remote.ModelList, remote.ModelList]:
    return remote.read_model_list(raw), model_list_from_json(json.loads(raw))


def same(fast: remote.ModelList, tolerant: remote.ModelList) -> None:
    assert list(fast) == list(tolerant)
    assert [type(card) for card in fast] == [type(card) for card in tolerant]
    assert fast.problems == tolerant.problems


ODD_CARDS = {
    "fine-tuned job null": changed(FINE, job=None),
    "fine-tuned without root": changed(FINE, root=...),
    "fine-tuned archived as a string": changed(FINE, archived="yes"),
    "fine-tuned with a base model's field": changed(FINE, audio_speech_capabilities={}),
    "base with a fine-tuned field": changed(BASE, job="abc"),
    "unknown type": changed(BASE, type="voice-agent", voices=["a"]),
    "no type": changed(BASE, type=...),
    "an unknown field": changed(FINE, workspace_tier="gold"),
    "capabilities not an object": changed(FINE, capabilities=["vision"]),
    "capabilities with odd values": changed(FINE, capabilities={"vision": 1, "ocr": True}),
    "created as a bool": changed(FINE, created=True),
    "internal null": changed(BASE, internal=None),
    "a naive deprecation date": changed(BASE, deprecation="2026-01-01T00:00:00"),
    "an unreadable deprecation date": changed(BASE, deprecation="next spring"),
    "temperature as an integer": changed(BASE, default_model_temperature=1),
    "max_context_length 0": changed(FINE, max_context_length=0),
    "aliases null": changed(BASE, aliases=None),
    "audio capabilities set": changed(BASE, audio_transcription_capabilities={"x": 1}),
    "not an object": 42,
    "no id": changed(FINE, id=...),
    "id null": changed(FINE, id=None),
}


class TestOnePass:
    def test_a_body_that_keeps_to_the_contract_is_read_as_the_tolerant_reader_reads_it(self):
        fast, tolerant = both(body(*CARDS))

        same(fast, tolerant)
        assert fast.raw == body(*CARDS)
        assert not fast.flagged

    @pytest.mark.parametrize("odd", list(ODD_CARDS), ids=list(ODD_CARDS))
    def test_one_odd_card_is_read_as_the_tolerant_reader_reads_it(self, odd):
        raw = body(*CARDS[:3], ODD_CARDS[odd], *CARDS[3:])

        fast, tolerant = both(raw)

        same(fast, tolerant)
        assert fast[: len(CARDS[:3])] == tolerant[:3]

    def test_capability_objects_are_shared_between_cards_that_send_the_same(self):
        cards = remote.read_model_list(body(FINE, changed(FINE, id="ft:other")))

        assert cards[0].capabilities is cards[1].capabilities

    @pytest.mark.parametrize(
        "raw", [b'{"object": "list"}', b'{"data": []}'], ids=["no data", "empty"]
    )
    def test_an_empty_list(self, raw):
        fast, tolerant = both(raw)

        assert list(fast) == list(tolerant) == []

    def test_problems_are_logged_once_and_not_when_read_again(self, caplog):
        caplog.set_level(logging.WARNING, logger="models_admin.remote")
        raw = body(FINE, changed(FINE, job=None, id="ft:odd"))

        remote.read_model_list(raw, log=False)
        assert "incomplete" not in caplog.text
        remote.read_model_list(raw)
        assert caplog.text.count("Mistral sent incomplete cards") == 1


class TestBodiesThatAreNotAList:
    @pytest.mark.parametrize(
        "raw",
        [b"[]", b'{"data": {}}', b'"list"', b'{"data": 3}'],
        ids=["array", "data an object", "a string", "data a number"],
    )
    def test_it_is_malformed(self, raw):
        with pytest.raises(remote.MalformedResponse) as error:
            remote.read_model_list(raw)

        assert "model list is not" in error.value.upstream_message

    def test_not_json_is_malformed_and_says_the_status(self):
        with pytest.raises(remote.MalformedResponse) as error:
            remote.read_model_list(b"<html>busy</html>", status=203)

        assert error.value.upstream_message == "GET /v1/models answered 203 without JSON"

    @pytest.mark.parametrize(
        "raw",
        [
            b"\xef\xbb\xbf" + body(*CARDS[:2]),  # a UTF-8 byte order mark
            body(*CARDS[:2]).replace(b'"archived": false', b'"archived": false, "t": NaN', 1),
        ],
        ids=["BOM", "NaN"],
    )
    def test_what_msgspec_refuses_the_standard_library_reads(self, raw):
        cards = remote.read_model_list(raw)

        assert [card.id for card in cards] == [c["id"] for c in CARDS[:2]]
        assert cards.raw == raw


def test_the_fast_structs_name_every_field_the_cards_read():
    """A field added to the card classes but not to the struct would send every card
    the slow way (and the tests above would still pass): keep them in step."""
    known = remote.ModelCard.COMMON_FIELDS | remote.BaseModelCard.OWN_FIELDS
    known |= remote.FineTunedModelCard.OWN_FIELDS

    assert set(wire._Card.__struct_fields__) == known


def test_a_body_is_decoded_whole_up_to_the_limit_and_entry_by_entry_above_it(reading, monkeypatch):
    decoded_whole: list[int] = []
    real = wire._whole_body

    def whole_body(raw: bytes) -> remote.ModelList | None:
        decoded_whole.append(len(raw))
        return real(raw)

    monkeypatch.setattr(wire, "_whole_body", whole_body)
    raw = body(*CARDS)

    cards = remote.read_model_list(raw)

    assert len(cards) == len(CARDS)
    assert decoded_whole == ([] if reading == "by entry" else [len(raw)])
