"""remote.entries: the list as the inventory sync reads it. Only the compared fields,
each as sent (wrong types included: the sync judges them), ``UNSET`` when missing; the
entry as sent on demand; a body of another shape is read entry by entry or refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from models_admin import remote
from models_admin.remote.entries import UNSET, read_entries
from models_admin.sandbox import seed

CARDS = seed.inventory("sandbox-entries", 6).cards
FINE = [c for c in CARDS if c["type"] == "fine-tuned"]
FIELDS = ("id", "type", "name", "description", "archived")


def body(*cards: Any, **envelope: Any) -> bytes:
    return json.dumps({"object": "list", "data": list(cards), **envelope}).encode()


def compared(entry: Any) -> tuple[Any, ...]:
    return tuple(getattr(entry, name) for name in FIELDS)


def as_sent(card: Any) -> tuple[Any, ...]:
    if not isinstance(card, dict):
        return (None, None, UNSET, UNSET, UNSET)
    default = {"id": None, "type": None}
    return tuple(card.get(name, default.get(name, UNSET)) for name in FIELDS)


def test_each_entry_gives_its_compared_fields_and_itself_as_sent():
    listed = read_entries(body(*CARDS))
    assert len(listed) == len(CARDS)
    assert [compared(e) for e in listed.entries] == [as_sent(c) for c in CARDS]
    assert listed.sent(len(CARDS) - 1) == CARDS[-1]
    assert [listed.sent(i) for i in range(len(CARDS))] == CARDS


@pytest.mark.parametrize(
    "odd",
    [
        {"name": 5},
        {"description": ["a", "list"]},
        {"archived": "yes"},
        {"archived": None},
        {"archived": 1},
        {"id": 7},
        {"id": {"nested": True}},
        {"type": None},
        {"name": ...},
        {"archived": ...},
        {"id": ...},
    ],
    ids=repr,
)
def test_a_wrong_typed_or_missing_field_is_read_as_sent(odd):
    card = copy.deepcopy(FINE[0])
    for name, value in odd.items():
        if value is ...:
            del card[name]
        else:
            card[name] = value
    listed = read_entries(body(FINE[1], card))
    assert compared(listed.entries[1]) == as_sent(card)
    assert compared(listed.entries[0]) == as_sent(FINE[1])
    assert listed.sent(1) == card


def test_entries_that_are_not_objects_send_the_body_entry_by_entry():
    data = [FINE[0], 1, None, "text", [FINE[1]], FINE[1]]
    listed = read_entries(body(*data))
    assert [compared(e) for e in listed.entries] == [as_sent(item) for item in data]
    assert [listed.sent(i) for i in range(len(data))] == data


def test_what_msgspec_refuses_the_standard_library_reads():
    raw = body(FINE[0], {**FINE[1], "default_model_temperature": float("nan")})
    for listed in (read_entries(b"\xef\xbb\xbf" + body(*FINE[:2])), read_entries(raw)):
        assert [e.id for e in listed.entries] == [c["id"] for c in FINE[:2]]
        assert listed.sent(0) == FINE[0]


def test_a_body_without_data_has_no_entries():
    assert len(read_entries(b'{"object": "list"}')) == 0


@pytest.mark.parametrize(
    "raw",
    [b"[]", b'{"data": null}', b'{"data": {"id": "x"}}', b'"list"', b"not json", b""],
)
def test_a_body_that_is_not_a_list_of_data_is_malformed(raw):
    with pytest.raises(remote.MalformedResponse):
        read_entries(raw, status=200)


def test_a_body_without_escapes_is_plain():
    """Plain: every string is stored as it is (raw UTF-8 is no escape); one ``\\u``
    escape anywhere (a NUL, a lone surrogate, or any other character) and the sync
    cleans every string it stores."""
    unicode = {**FINE[0], "name": "ünïcode, raw"}
    assert read_entries(json.dumps({"data": [unicode]}, ensure_ascii=False).encode()).plain
    other_escapes = {**FINE[0], "description": 'two\nlines, "quoted", a \\ and a \t'}
    assert read_entries(body(other_escapes)).plain
    assert not read_entries(body({**FINE[0], "name": "C:\\users"})).plain  # a false alarm
    for escaped in ("nul\x00", "\ud800", "é"):
        card = {**FINE[0], "description": escaped}
        assert not read_entries(body(FINE[1], card)).plain
    assert not read_entries(body(FINE[0], 1)).plain  # read entry by entry
    assert not read_entries(b"\xef\xbb\xbf" + body(FINE[0])).plain  # the standard library's
