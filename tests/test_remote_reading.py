"""The client's reading of JSON, error answers and Retry-After, on plain data.

Everything here is also reached over HTTP in tests/test_remote.py; these tests pin
each branch of the pure functions, including shapes the sandbox cannot send (an
``x-request-id`` header, ``retry-after-ms``, a 3xx, a non-object list item).
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from models_admin import remote
from models_admin.remote.cards import model_list_from_json
from models_admin.remote.reading import (
    _Reader,
    error_for,
    parse_error_body,
    retry_after_seconds,
)

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def reader(**data: Any) -> _Reader:
    return _Reader(data, "card")


def upstream_message(error: remote.ModelsApiError) -> str:
    assert isinstance(error, remote.MalformedResponse)
    assert error.upstream_message is not None
    return error.upstream_message


class TestReader:
    @pytest.mark.parametrize("data", [None, [], "card", 3])
    def test_it_needs_an_object(self, data):
        with pytest.raises(remote.MalformedResponse) as info:
            _Reader(data, "data[3]")

        assert upstream_message(info.value) == "data[3] is not an object"

    @pytest.mark.parametrize(
        ("read", "value", "expected"),
        [
            (lambda r: r.string("x"), 5, "a string"),
            (lambda r: r.opt_string("x"), 5, "a string or null"),
            (lambda r: r.integer("x"), "5", "an integer"),
            (lambda r: r.integer("x"), True, "an integer"),
            (lambda r: r.opt_integer("x"), 1.5, "an integer"),
            (lambda r: r.number("x"), "0.5", "a number"),
            (lambda r: r.number("x"), False, "a number"),
            (lambda r: r.opt_number("x"), "warm", "a number"),
            (lambda r: r.boolean("x"), "yes", "a boolean"),
            (lambda r: r.boolean("x", default=False), None, "a boolean"),
            (lambda r: r.array("x"), {"a": 1}, "an array"),
            (lambda r: r.strings("x"), "abc", "an array of strings"),
            (lambda r: r.strings("x"), ["a", 1], "an array of strings"),
            (lambda r: r.strings("x", required=True), None, "an array of strings"),
            (lambda r: r.opt_mapping("x"), [], "an object or null"),
            (lambda r: r.opt_datetime("x"), "next Tuesday", "an RFC 3339 date-time"),
            (lambda r: r.opt_datetime("x"), 1700000000, "a string or null"),
        ],
    )
    def test_each_wrong_type_names_the_field(self, read, value, expected):
        with pytest.raises(remote.MalformedResponse) as info:
            read(reader(x=value))

        assert upstream_message(info.value) == f"card.x should be {expected}"
        assert "could not read" in info.value.message

    @pytest.mark.parametrize(
        "read",
        [
            lambda r: r.required("x"),
            lambda r: r.string("x"),
            lambda r: r.integer("x"),
            lambda r: r.number("x"),
            lambda r: r.array("x"),
            lambda r: r.strings("x", required=True),
        ],
    )
    def test_a_missing_required_field(self, read):
        with pytest.raises(remote.MalformedResponse) as info:
            read(reader())

        assert upstream_message(info.value) == "card.x is missing"

    def test_optional_fields_may_be_absent_or_null(self):
        r = reader(s=None, i=None, n=None, m=None, d=None, a=None)

        assert [r.opt_string("s"), r.opt_integer("i"), r.opt_number("n")] == [None] * 3
        assert [r.opt_mapping("m"), r.opt_datetime("d"), r.opt_string("absent")] == [None] * 3
        assert r.strings("a") == () and r.strings("absent") == ()
        assert r.boolean("absent", default=True) is True

    def test_good_values(self):
        r = reader(i=3, n=2, b=False, a=[1], s=["x"], m={"k": 1}, z="2026-01-31T12:00:00Z")

        assert (r.integer("i"), r.number("n"), r.boolean("b")) == (3, 2.0, False)
        assert (r.array("a"), r.strings("s"), r.opt_mapping("m")) == ([1], ("x",), {"k": 1})
        assert r.opt_datetime("z") == datetime(2026, 1, 31, 12, tzinfo=UTC)

    def test_a_date_without_offset_is_utc(self):
        assert reader(z="2026-01-31T12:00:00").opt_datetime("z") == datetime(
            2026, 1, 31, 12, tzinfo=UTC
        )


def card(**fields: Any) -> dict[str, Any]:
    return {"id": "m", "capabilities": {}, **fields}


class TestCards:
    @pytest.mark.parametrize(
        ("fields", "cls"),
        [
            ({"type": "base"}, remote.BaseModelCard),
            ({"type": "fine-tuned", "job": "j", "root": "r"}, remote.FineTunedModelCard),
            ({"type": "voice-agent"}, remote.UnknownModelCard),
            ({"type": None}, remote.UnknownModelCard),
            ({}, remote.UnknownModelCard),
        ],
    )
    def test_the_type_picks_the_class(self, fields, cls):
        parsed = remote.ModelCard.from_json(card(**fields))

        assert type(parsed) is cls
        assert parsed.type == (fields.get("type") or "unknown")

    def test_defaults_for_absent_fields(self):
        parsed = remote.ModelCard.from_json(card(type="fine-tuned", job="j", root="r"))

        assert isinstance(parsed, remote.FineTunedModelCard)
        assert (parsed.object, parsed.owned_by, parsed.max_context_length) == ("model", "", 32768)
        assert (parsed.created, parsed.created_at, parsed.archived) == (None, None, False)
        assert parsed.display_name == "m" and parsed.extra == ()

    def test_unknown_flags_are_kept_after_the_known_ones(self):
        caps = {"zeta": True, "vision": True, "alpha": True, "ocr": False, "audio": "yes"}

        parsed = remote.ModelCard.from_json(card(capabilities=caps))

        assert parsed.capabilities.ordered == ("vision", "alpha", "zeta")
        assert "ocr" not in parsed.capabilities and "audio" not in parsed.capabilities

    @pytest.mark.parametrize("caps", [None, [], "all", True])
    def test_capabilities_that_are_not_an_object_flag_the_card(self, caps, caplog):
        parsed = remote.ModelCard.from_json(card(capabilities=caps), where="data[0]")

        assert parsed.problems == ("capabilities",)
        assert parsed.capabilities == remote.Capabilities()
        assert parsed.problem_message == "Mistral sent an incomplete card: capabilities"
        assert "data[0].capabilities is not an object" in caplog.text

    def test_a_card_that_is_not_an_object_is_malformed(self):
        with pytest.raises(remote.MalformedResponse) as info:
            remote.ModelCard.from_json(["m"], where="data[0]")

        assert upstream_message(info.value) == "data[0] is not an object"

    def test_a_card_in_order_has_no_problems(self):
        parsed = remote.ModelCard.from_json(card(type="base"))

        assert parsed.problems == () and parsed.problem_message == ""

    @pytest.mark.parametrize(
        "body",
        [[], None, "list", {"object": "list", "data": {}}, {"data": None}],
    )
    def test_a_model_list_must_hold_a_data_array(self, body):
        with pytest.raises(remote.MalformedResponse):
            model_list_from_json(body)

    def test_an_item_that_is_not_an_object_is_left_out_and_counted(self):
        parsed = model_list_from_json({"data": [card(), "m2", card(id="m3")]})

        assert [c.id for c in parsed] == ["m", "m3"]
        assert parsed.problems == (
            "Mistral sent a model without a usable id (entry 2); it is not shown.",
        )
        assert parsed.flagged == ()

    def test_the_list_survives_pickling_with_its_problems(self):
        parsed = model_list_from_json({"data": [card(), {"id": 3}]})

        copy = pickle.loads(pickle.dumps(parsed))  # noqa: S301 - our own bytes (the cache pickles)

        assert copy == parsed and copy.problems == parsed.problems
        assert isinstance(copy, remote.ModelList)

    def test_an_empty_list_has_no_data_key(self):
        assert model_list_from_json({"object": "list"}) == ()


def updated(**fields: Any) -> dict[str, Any]:
    return {
        "id": "ft:m",
        "created": 1,
        "owned_by": "org",
        "workspace_id": "ws",
        "root": "open-mistral-7b",
        "root_version": "open-mistral-7b",
        "archived": False,
        "name": "bot",
        "description": None,
        "capabilities": {"completion_chat": True},
        **fields,
    }


TARGET = {"name": "intent", "labels": ["a", "b"], "weight": 1, "loss_function": "single_class"}


class TestUpdatedModel:
    def test_a_completion_model_ignores_targets(self):
        parsed = remote.UpdatedModel.from_json(
            updated(classifier_targets="ignored"), model_id="ft:m"
        )

        assert parsed.model_type == "completion" and parsed.classifier_targets == ()
        assert (parsed.job, parsed.max_context_length, parsed.object) == (None, 32768, "model")

    def test_a_classifier_reads_its_targets(self):
        parsed = remote.UpdatedModel.from_json(
            updated(model_type="classifier", classifier_targets=[TARGET]), model_id="ft:m"
        )

        assert parsed.classifier_targets == (
            remote.ClassifierTarget("intent", ("a", "b"), 1.0, "single_class"),
        )

    @pytest.mark.parametrize(
        ("targets", "problem"),
        [
            (None, "updated model.classifier_targets should be an array"),
            (["intent"], "classifier_targets[0] is not an object"),
            ([{**TARGET, "labels": None}], "classifier_targets[0].labels should be an array"),
            ([{**TARGET, "weight": "1"}], "classifier_targets[0].weight should be a number"),
            ([{**TARGET, "name": 1}], "classifier_targets[0].name should be a string"),
        ],
    )
    def test_bad_targets_are_flagged(self, targets, problem, caplog):
        parsed = remote.UpdatedModel.from_json(
            updated(model_type="classifier", classifier_targets=targets), model_id="ft:m"
        )

        assert parsed.problems == ("classifier_targets",) and parsed.classifier_targets == ()
        assert problem in caplog.text

    @pytest.mark.parametrize(
        ("field", "value", "problem"),
        [
            ("created", None, "should be an integer"),
            ("workspace_id", None, "should be a string"),
            ("root_version", None, "is missing"),
            ("capabilities", None, "is not an object"),
            ("id", 7, "should be a string"),
        ],
    )
    def test_fields_the_dashboard_does_not_use_are_flagged(self, field, value, problem, caplog):
        body = updated(**{field: value})
        if problem == "is missing":
            del body[field]

        parsed = remote.UpdatedModel.from_json(body, model_id="ft:m")

        assert parsed.problems == (field,)
        assert (parsed.id, parsed.name, parsed.archived) == ("ft:m", "bot", False)
        assert problem in caplog.text

    @pytest.mark.parametrize(
        ("field", "value", "problem"),
        [
            ("archived", None, "updated model.archived should be a boolean"),
            ("archived", "missing", "updated model.archived should be a boolean"),
            ("name", 3, "updated model.name should be a string or null"),
            ("description", ["x"], "updated model.description should be a string or null"),
        ],
    )
    def test_fields_the_dashboard_uses_must_follow_the_contract(self, field, value, problem):
        body = updated(**{field: value})
        if value == "missing":
            del body[field]

        with pytest.raises(remote.MalformedResponse) as info:
            remote.UpdatedModel.from_json(body, model_id="ft:m")

        assert upstream_message(info.value) == problem

    def test_absent_name_and_description_read_as_null(self):
        body = updated()
        del body["name"], body["description"]

        parsed = remote.UpdatedModel.from_json(body, model_id="ft:m")

        assert (parsed.name, parsed.description, parsed.problems) == (None, None, ())


class TestResults:
    def test_delete_and_archive_defaults(self):
        assert remote.DeleteResult.from_json({"id": "m"}) == remote.DeleteResult("m", True)
        assert remote.ArchiveResult.from_json({"id": "m"}, model_id="m", default=False) == (
            remote.ArchiveResult("m", False)
        )

    def test_archive_reads_only_archived(self):
        assert remote.ArchiveResult.from_json({"archived": True}, model_id="m", default=False) == (
            remote.ArchiveResult("m", True)
        )
        with pytest.raises(remote.MalformedResponse):
            remote.ArchiveResult.from_json({"archived": "yes"}, model_id="m", default=False)

    @pytest.mark.parametrize(
        "body", [{"id": 1, "deleted": True}, {"id": "m", "deleted": "yes"}, ["m"]]
    )
    def test_a_bad_delete_response(self, body):
        with pytest.raises(remote.MalformedResponse):
            remote.DeleteResult.from_json(body)

    def test_unset_shows_as_such(self):
        assert repr(remote.UNSET) == "UNSET"


def response(status: int, body: Any = None, *, text: str = "", **headers: str) -> httpx.Response:
    if body is not None:
        return httpx.Response(status, json=body, headers=headers)
    return httpx.Response(status, text=text, headers=headers)


class TestErrorBodies:
    """Shapes the sandbox cannot send; the rest are driven over HTTP in test_remote.py."""

    def test_a_request_id_header_is_kept_and_a_body_one_wins(self):
        header = parse_error_body(response(404, {}, **{"x-request-id": "h1"}))
        kong = parse_error_body(response(404, {}, **{"x-kong-request-id": "k1"}))
        both = parse_error_body(response(404, {"request_id": "b1"}, **{"x-request-id": "h1"}))

        assert (header.request_id, kong.request_id, both.request_id) == ("h1", "k1", "b1")

    @pytest.mark.parametrize("status", [204, 302, 304])
    def test_an_unexpected_status_is_malformed(self, status):
        error = error_for(response(status, text="moved"))

        assert type(error) is remote.MalformedResponse
        assert f"unexpected HTTP {status}" in error.message


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("headers", "seconds"),
        [
            ({}, None),
            ({"retry-after": ""}, None),
            ({"retry-after": "2"}, 2.0),
            ({"retry-after": "1.5"}, 1.5),
            ({"retry-after": "-3"}, 0.0),
            ({"retry-after": "soon"}, None),
            ({"retry-after": "Mon, 30 Nov 2026 12:00:30 GMT"}, 30.0),
            ({"retry-after": "Mon, 30 Nov 2026 12:00:30 -0000"}, 30.0),
            ({"retry-after": "Mon, 30 Nov 2026 13:00:30 +0100"}, 30.0),
            ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
            ({"retry-after-ms": "1500"}, 1.5),
            ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
            ({"retry-after-ms": "-1"}, 0.0),
            ({"retry-after-ms": "later", "retry-after": "9"}, 9.0),
            ({"retry-after-ms": "", "retry-after": "9"}, 9.0),
        ],
    )
    def test_each_form(self, headers, seconds):
        assert retry_after_seconds(response(429, {}, **headers), now=NOW) == seconds

    def test_without_now_a_date_counts_from_the_present(self):
        assert (
            retry_after_seconds(
                response(429, {}, **{"retry-after": "Thu, 01 Jan 2015 00:00:00 GMT"})
            )
            == 0
        )
