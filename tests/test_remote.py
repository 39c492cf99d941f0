"""The HTTP client against the sandbox, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from models_admin import remote
from models_admin.remote import ModelsApi, RetryPolicy
from models_admin.sandbox import fingerprint, seed
from tests import servers

KEY = "sandbox-client-tests"


class FakeTime:
    """Injectable sleep and clock: retries are counted, never waited for."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_api(url: str, fake_time: FakeTime, *, key: str = KEY, **policy) -> ModelsApi:
    options: dict[str, Any] = {
        "max_retries": 3,
        "backoff": 0.5,
        "max_backoff": 8.0,
        "budget": 60.0,
        "jitter": 0.25,
    }
    options.update(policy)
    retry = RetryPolicy(sleep=fake_time.sleep, clock=fake_time.clock, random=lambda: 0.5, **options)
    return ModelsApi(api_key=key, base_url=url, timeout=0.5, connect_timeout=0.5, retry=retry)


@pytest.fixture
def api(sandbox, fake_time) -> ModelsApi:
    return make_api(sandbox.url, fake_time)


def first_fine_tuned(sandbox, key: str = KEY) -> dict:
    return next(
        c for c in sandbox.state.workspace(key).models.values() if c["type"] == "fine-tuned"
    )


def first_base(sandbox, key: str = KEY) -> dict:
    return next(c for c in sandbox.state.workspace(key).models.values() if c["type"] == "base")


def a_classifier(sandbox, key: str = KEY) -> dict:
    return next(
        c
        for c in sandbox.state.workspace(key).models.values()
        if c["id"].startswith("ft:classifier:")
    )


class TestListModels:
    def test_it_returns_typed_cards(self, api, sandbox):
        cards = api.list_models()

        assert len(cards) == len(sandbox.state.workspace(KEY).models)
        assert {type(c) for c in cards} == {remote.BaseModelCard, remote.FineTunedModelCard}
        ft = next(c for c in cards if isinstance(c, remote.FineTunedModelCard))
        assert ft.id.startswith("ft:") and ft.job and ft.root
        assert ft.created_at is not None and ft.created_at.tzinfo is not None
        base = next(c for c in cards if isinstance(c, remote.BaseModelCard))
        assert base.owned_by == "mistralai"

    def test_it_keeps_every_field_of_the_reference(self, api, sandbox):
        raw = first_base(sandbox)
        card = next(c for c in api.list_models() if c.id == raw["id"])

        assert card.max_context_length == raw["max_context_length"]
        assert card.aliases == tuple(raw["aliases"])
        assert card.description == raw["description"]
        assert card.internal is raw["internal"]
        assert set(card.capabilities.enabled) == {k for k, v in raw["capabilities"].items() if v}

    def test_it_sends_the_optional_filters(self, api, sandbox):
        api.list_models(provider="mistralai", model="mistral-small-latest")

        assert sandbox.state.requests[-1].query == {
            "provider": "mistralai",
            "model": "mistral-small-latest",
        }

    def test_it_tolerates_unknown_types_and_flags(self, api, sandbox):
        card = dict(first_base(sandbox), id="voice-agent-1", type="voice-agent", new_field={"x": 1})
        card["capabilities"] = {**card["capabilities"], "telepathy": True}
        sandbox.state.workspace(KEY).put(card)

        parsed = next(c for c in api.list_models() if c.id == "voice-agent-1")

        assert isinstance(parsed, remote.UnknownModelCard)
        assert parsed.type == "voice-agent"
        assert "telepathy" in parsed.capabilities
        assert parsed.capabilities.ordered[-1] == "telepathy"
        assert ("new_field", {"x": 1}) in parsed.extra

    def test_missing_flags_read_as_false(self, api, sandbox):
        card = dict(first_fine_tuned(sandbox), id="ft:open-mistral-7b:aaaaaaaa:20250101:bbbbbbbb")
        card["capabilities"] = {"completion_chat": True}
        sandbox.state.workspace(KEY).put(card)

        parsed = api.retrieve_model(card["id"])

        assert parsed.capabilities.enabled == frozenset({"completion_chat"})
        assert "vision" not in parsed.capabilities

    def test_it_sends_the_key_and_headers(self, api, sandbox):
        api.list_models()

        request = sandbox.state.requests[-1]
        assert request.method == "GET" and request.path == "/v1/models"
        assert request.key_fingerprint == fingerprint(KEY)


class TestRetrieveModel:
    def test_it_works_for_fine_tuned_and_base(self, api, sandbox):
        ft, base = first_fine_tuned(sandbox), first_base(sandbox)

        assert isinstance(api.retrieve_model(ft["id"]), remote.FineTunedModelCard)
        assert isinstance(api.retrieve_model(base["id"]), remote.BaseModelCard)
        assert sandbox.state.requests[-2].path == f"/v1/models/{ft['id']}"  # ':' stays unescaped

    def test_it_raises_not_found(self, api):
        with pytest.raises(remote.ModelNotFound) as info:
            api.retrieve_model("ft:open-mistral-7b:00000000:20240101:00000000")

        assert info.value.status == 404
        assert "does not exist" in info.value.message

    @pytest.mark.parametrize("model_id", ["a/b", "a?b=1", "a#b", "a%2Fb", "a b"])
    def test_it_encodes_reserved_characters(self, api, sandbox, model_id):
        with pytest.raises(remote.ModelNotFound):
            api.retrieve_model(model_id)

        path = sandbox.state.requests[-1].path
        assert path.startswith("/v1/models/") and path.count("/") == 3
        assert "?" not in path and "#" not in path and " " not in path

    @pytest.mark.parametrize("model_id", ["", ".", "..", "a\nb", "x" * 300])
    def test_it_refuses_ids_that_cannot_exist_without_calling(self, api, sandbox, model_id):
        with pytest.raises(remote.InvalidModelId):
            api.retrieve_model(model_id)

        assert sandbox.state.requests == []


class TestDeleteModel:
    def test_it_deletes_a_fine_tuned_model(self, api, sandbox):
        ft = first_fine_tuned(sandbox)

        result = api.delete_model(ft["id"])

        assert result == remote.DeleteResult(id=ft["id"], deleted=True)
        with pytest.raises(remote.ModelNotFound):
            api.retrieve_model(ft["id"])

    def test_base_models_are_forbidden(self, api, sandbox):
        with pytest.raises(remote.ApiForbidden) as info:
            api.delete_model(first_base(sandbox)["id"])

        assert info.value.status == 403
        assert "Base models cannot be deleted" in info.value.message

    def test_a_plain_404_is_not_found(self, api):
        with pytest.raises(remote.ModelNotFound):
            api.delete_model("ft:open-mistral-7b:00000000:20240101:00000000")

    def test_a_retry_that_finds_it_gone_counts_as_deleted(self, api, sandbox):
        """The first attempt deletes but its answer is lost (the sandbox answers too late,
        the client times out); the retry gets 404, so the model was deleted."""
        ft = first_fine_tuned(sandbox)
        sandbox.state.faults.set(hang_s=3, hang_times=1, hang_after=True, match="DELETE")

        result = api.delete_model(ft["id"])

        assert result == remote.DeleteResult(id=ft["id"], deleted=True, confirmed_by_retry=True)
        assert [r.method for r in sandbox.state.requests] == ["DELETE", "DELETE"]


class TestUpdateModel:
    def test_it_renames_a_completion_model(self, api, sandbox):
        ft = next(
            c
            for c in sandbox.state.workspace(KEY).models.values()
            if c["id"].startswith("ft:") and not c["id"].startswith("ft:classifier:")
        )

        updated = api.update_model(ft["id"], name="support-bot-v9")

        assert updated.model_type == "completion"
        assert updated.name == "support-bot-v9"
        assert updated.workspace_id and updated.root_version
        assert sandbox.state.requests[-1].json == {"name": "support-bot-v9"}
        assert api.retrieve_model(ft["id"]).name == "support-bot-v9"

    def test_it_parses_classifier_responses(self, api, sandbox):
        classifier = a_classifier(sandbox)

        updated = api.update_model(classifier["id"], description="Routes tickets")

        assert updated.model_type == "classifier"
        assert updated.classifier_targets and updated.classifier_targets[0].labels
        assert sandbox.state.requests[-1].json == {"description": "Routes tickets"}

    def test_none_sends_null_and_unset_leaves_out(self, api, sandbox):
        ft = first_fine_tuned(sandbox)

        api.update_model(ft["id"], description=None)

        assert sandbox.state.requests[-1].json == {"description": None}
        assert api.retrieve_model(ft["id"]).description is None

    def test_a_422_carries_field_errors(self, api, sandbox):
        with pytest.raises(remote.ApiRejected) as info:
            api.update_model(first_fine_tuned(sandbox)["id"], name="x" * 500)

        assert info.value.status == 422
        assert list(info.value.field_errors) == ["name"]
        assert "name:" in info.value.message

    def test_base_models_are_not_found_here(self, api, sandbox):
        with pytest.raises(remote.ModelNotFound):
            api.update_model(first_base(sandbox)["id"], name="mine")


class TestArchive:
    def test_archive_and_unarchive(self, api, sandbox):
        ft = next(
            c
            for c in sandbox.state.workspace(KEY).models.values()
            if c["type"] == "fine-tuned" and not c["archived"]
        )

        assert api.archive_model(ft["id"]) == remote.ArchiveResult(id=ft["id"], archived=True)
        assert api.retrieve_model(ft["id"]).archived is True
        assert api.unarchive_model(ft["id"]) == remote.ArchiveResult(id=ft["id"], archived=False)
        assert [r.method for r in sandbox.state.requests] == ["POST", "GET", "DELETE"]
        assert sandbox.state.requests[0].path == f"/v1/fine_tuning/models/{ft['id']}/archive"


class TestErrors:
    def test_a_wrong_key_is_auth_failed_with_request_id(self, sandbox, fake_time):
        api = make_api(sandbox.url, fake_time, key="not-a-sandbox-key")

        with pytest.raises(remote.ApiAuthFailed) as info:
            api.list_models()

        assert not isinstance(info.value, remote.ApiForbidden)
        assert info.value.status == 401
        assert info.value.request_id and len(info.value.request_id) == 32
        assert "not-a-sandbox-key" not in info.value.message

    @pytest.mark.parametrize(
        ("status", "body", "error", "says"),
        [
            (401, {"detail": "Unauthorized"}, remote.ApiAuthFailed, "API key"),
            (
                403,
                {"object": "error", "message": "Not on your tier"},
                remote.ApiForbidden,
                "Not on your tier",
            ),
            (
                404,
                {"message": "no Route matched with those values", "request_id": "ab" * 16},
                remote.ModelNotFound,
                "does not exist",
            ),
            (409, {"detail": "Model is busy"}, remote.ApiRejected, "Model is busy"),
            (
                422,
                {"detail": "Model not available for this type of fine-tuning (completion)."},
                remote.ApiRejected,
                "not available",
            ),
            (
                400,
                "Bad request: the body could not be parsed",
                remote.ApiRejected,
                "could not be parsed",
            ),
            (
                418,
                {
                    "object": "error",
                    "message": "I'm a teapot",
                    "type": "x",
                    "param": None,
                    "code": "1",
                },
                remote.ApiRejected,
                "teapot",
            ),
        ],
    )
    def test_each_status_maps_to_its_class(self, api, sandbox, status, body, error, says):
        sandbox.state.faults.set(fail_status=status, fail_times=1, fail_body=body)

        with pytest.raises(error) as info:
            api.list_models()

        assert type(info.value) is error
        assert info.value.status == status
        assert says in info.value.message
        assert len(sandbox.state.requests) == 1  # not retried

    def test_the_request_id_in_a_body_is_kept(self, api, sandbox):
        sandbox.state.faults.set(
            fail_status=404,
            fail_times=1,
            fail_body={"message": "no Route matched with those values", "request_id": "cd" * 16},
        )

        with pytest.raises(remote.ModelNotFound) as info:
            api.list_models()

        assert info.value.request_id == "cd" * 16

    def test_a_detail_list_becomes_field_errors(self, api, sandbox):
        body = {
            "detail": [
                {
                    "type": "string_type",
                    "loc": ["body", "name"],
                    "msg": "Input should be a valid string",
                },
                {"type": "value_error", "loc": ["body"], "msg": "Body is odd"},
            ]
        }
        sandbox.state.faults.set(fail_status=422, fail_times=1, fail_body=body)

        with pytest.raises(remote.ApiRejected) as info:
            api.list_models()

        assert info.value.field_errors == {
            "name": ["Input should be a valid string"],
            "__all__": ["Body is odd"],
        }

    @pytest.mark.parametrize(
        ("body", "said", "field_errors"),
        [
            (
                {"detail": ["odd", None, {"loc": ["body", "name"], "message": "Too long"}]},
                "name: Too long",
                {"name": ["Too long"]},
            ),
            ({"detail": [{}]}, "invalid value", {"__all__": ["invalid value"]}),
            (
                {"detail": [{"loc": ["query", "path"], "msg": "Bad"}]},
                "Bad",
                {"__all__": ["Bad"]},
            ),
            ({"detail": [], "message": "From message"}, "From message", {}),
            ({"detail": {"odd": 1}, "message": "From message"}, "From message", {}),
            ({"detail": None, "message": 5}, None, {}),
            (["not", "an", "object"], None, {}),
            ("<!DOCTYPE html><html><body>Maintenance</body></html>", None, {}),
            ("   \n  ", None, {}),
            ("  Model\n   is\tbusy  ", "Model is busy", {}),
            ({"detail": "x" * 1000}, "x" * 300, {}),
        ],
    )
    def test_every_error_body_shape(self, api, sandbox, body, said, field_errors):
        sandbox.state.faults.set(fail_status=409, fail_times=1, fail_body=body)

        with pytest.raises(remote.ApiRejected) as info:
            api.list_models()

        assert info.value.upstream_message == said
        assert info.value.field_errors == field_errors
        if said is None:
            assert info.value.message == "Mistral refused the request (HTTP 409)."
        else:
            assert info.value.message.endswith(f"Mistral said: “{said}”")

    def test_a_request_id_that_is_not_a_string_is_ignored(self, api, sandbox):
        body = {"message": "Not on your tier", "request_id": 7}
        sandbox.state.faults.set(fail_status=403, fail_times=1, fail_body=body)

        with pytest.raises(remote.ApiForbidden) as info:
            api.list_models()

        assert info.value.request_id is None
        assert info.value.upstream_message == "Not on your tier"

    @pytest.mark.parametrize("status", [500, 502, 503, 504, 520, 521, 522, 523, 524])
    def test_server_errors_are_unavailable_after_retries(self, api, sandbox, fake_time, status):
        sandbox.state.faults.set(fail_status=status, fail_times=10)

        with pytest.raises(remote.ApiUnavailable) as info:
            api.list_models()

        assert info.value.status == status
        assert f"HTTP {status}" in info.value.message
        assert len(sandbox.state.requests) == 4  # one try and three retries
        assert len(fake_time.sleeps) == 3

    @pytest.mark.parametrize("kind", ["truncated", "html", "wrong_shape"])
    def test_malformed_responses(self, api, sandbox, kind):
        sandbox.state.faults.set(malformed_times=1, malformed_kind=kind)

        with pytest.raises(remote.MalformedResponse) as info:
            api.list_models()

        assert "could not read" in info.value.message

    def test_a_card_missing_a_required_field_comes_back_flagged(self, api, sandbox):
        card = dict(first_fine_tuned(sandbox), id="ft:open-mistral-7b:aaaaaaaa:20250101:cccccccc")
        del card["job"]
        sandbox.state.workspace(KEY).put(card)

        parsed = api.retrieve_model(card["id"])

        assert isinstance(parsed, remote.FineTunedModelCard)
        assert parsed.problems == ("job",) and parsed.job == ""
        assert parsed.problem_message == "Mistral sent an incomplete card: job"
        assert (parsed.root, parsed.name) == (card["root"], card["name"])

    @pytest.mark.parametrize(
        ("field", "value", "problem"),
        [
            ("id", None, "model.id should be a string"),
            ("type", 3, "model.type should be a string or null"),
            ("name", ["a"], "model.name should be a string or null"),
            ("created", "2024-07-19", "model.created should be an integer"),
            ("max_context_length", 1.5, "model.max_context_length should be an integer"),
            ("default_model_temperature", "warm", "should be a number"),
            ("internal", "no", "model.internal should be a boolean"),
            ("aliases", "mistral-small", "model.aliases should be an array of strings"),
            ("deprecation", "soon", "model.deprecation should be an RFC 3339 date-time"),
            ("capabilities", ["vision"], "model.capabilities is not an object"),
            ("job", None, "model.job should be a string"),
            ("archived", "yes", "model.archived should be a boolean"),
        ],
    )
    def test_a_wrong_field_in_a_fine_tuned_card_is_flagged(
        self, api, sandbox, field, value, problem, caplog
    ):
        model_id = first_fine_tuned(sandbox)["id"]
        # Straight into the table: put() would refuse a card without a string id.
        sandbox.state.workspace(KEY).models[model_id] = dict(
            first_fine_tuned(sandbox), **{field: value}
        )

        parsed = api.retrieve_model(model_id)

        assert parsed.problems == (field,)
        assert parsed.id == model_id  # a retrieved card keeps the id it was asked for
        assert problem in caplog.text
        assert sandbox.state.requests[-1].path.startswith("/v1/models/ft:")

    def test_a_wrong_audio_capability_in_a_base_card_is_flagged(self, api, sandbox, caplog):
        card = dict(first_base(sandbox), audio_speech_capabilities=["voices"])
        sandbox.state.workspace(KEY).put(card)

        parsed = api.retrieve_model(card["id"])

        assert isinstance(parsed, remote.BaseModelCard)
        assert parsed.problems == ("audio_speech_capabilities",)
        assert "model.audio_speech_capabilities should be an object or null" in caplog.text

    def test_bad_classifier_targets_in_an_update_are_flagged(self, api, sandbox):
        classifier = a_classifier(sandbox)
        target = {"name": "intent", "labels": "billing", "weight": 1, "loss_function": "x"}
        sandbox.state.workspace(KEY).set_extras(
            classifier["id"], seed.FineTuneExtras("ministral-3b-2410", "classifier", [target])
        )

        updated = api.update_model(classifier["id"], name="router")

        assert updated.name == "router" and updated.problems == ("classifier_targets",)

    def test_a_timeout_is_retried_then_reported(self, api, sandbox, fake_time):
        sandbox.state.faults.set(hang_s=3, hang_times=10)

        with pytest.raises(remote.ApiTimeout) as info:
            make_api(sandbox.url, fake_time, max_retries=1).list_models()

        assert "did not answer in time" in info.value.message
        assert len(fake_time.sleeps) == 1

    def test_a_timeout_then_success(self, api, sandbox, fake_time):
        sandbox.state.faults.set(hang_s=3, hang_times=1)

        assert api.list_models()
        assert len(fake_time.sleeps) == 1

    def test_connection_refused_is_unavailable_and_retried(self, fake_time):
        api = make_api(f"http://127.0.0.1:{servers.free_port()}", fake_time)

        with pytest.raises(remote.ApiUnavailable) as info:
            api.list_models()

        assert api.calls == 4
        assert isinstance(info.value.__cause__, httpx.ConnectError)

    def test_messages_never_contain_the_key(self, sandbox, fake_time, caplog):
        caplog.set_level(logging.DEBUG)
        secret = "sandbox-do-not-leak-0123456789"
        sandbox.state.faults.set(fail_status=503, fail_times=10)

        with pytest.raises(remote.ApiUnavailable) as info:
            make_api(sandbox.url, fake_time, key=secret).list_models()

        assert secret not in info.value.message
        assert secret not in repr(make_api(sandbox.url, fake_time, key=secret))
        assert secret not in caplog.text


class TestRetries:
    def test_backoff_grows_exponentially_with_jitter(self, sandbox, fake_time):
        sandbox.state.faults.set(fail_status=503, fail_times=3)
        values = iter([0.0, 1.0, 0.5])
        api = make_api(sandbox.url, fake_time)
        api.retry = RetryPolicy(
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            random=lambda: next(values),
            backoff=0.5,
            jitter=0.25,
        )

        assert api.list_models()
        assert fake_time.sleeps == pytest.approx([0.5 * 0.75, 1.0 * 1.25, 2.0])
        assert len(sandbox.state.requests) == 4

    def test_the_wait_is_capped(self, fake_time):
        policy = RetryPolicy(
            backoff=1, multiplier=10, max_backoff=5, jitter=0, sleep=fake_time.sleep
        )

        assert [policy.delay(n, None) for n in range(4)] == [1, 5, 5, 5]

    def test_retry_after_seconds_is_honoured(self, api, sandbox, fake_time):
        sandbox.state.faults.set(fail_status=429, fail_times=2, retry_after="2")

        assert api.list_models()
        assert fake_time.sleeps == [2.0, 2.0]

    def test_retry_after_as_an_http_date(self, api, sandbox, fake_time):
        when = datetime.now(UTC) + timedelta(seconds=30)
        sandbox.state.faults.set(
            fail_status=503, fail_times=1, retry_after=format_datetime(when, usegmt=True)
        )

        assert api.list_models()
        # Not the 0.5 s backoff: the date was read (its exact value: test_remote_reading.py).
        assert 0.5 < fake_time.sleeps[0] <= 30

    @pytest.mark.parametrize("value", ["soon", "0", "Wed, 21 Oct 2015 07:28:00 -0000"])
    def test_an_unusable_retry_after_falls_back_to_backoff(self, api, sandbox, fake_time, value):
        sandbox.state.faults.set(fail_status=429, fail_times=1, retry_after=value)

        assert api.list_models()
        assert fake_time.sleeps == [0.5]

    def test_a_429_without_retry_after_says_try_again_shortly(self, sandbox, fake_time):
        sandbox.state.faults.set(fail_status=429, fail_times=5)

        with pytest.raises(remote.ApiRateLimited) as info:
            make_api(sandbox.url, fake_time, max_retries=1).list_models()

        assert info.value.retry_after is None
        assert info.value.message == remote.ApiRateLimited.default_message
        assert len(sandbox.state.requests) == 2

    def test_a_retry_after_in_the_past_falls_back_to_backoff(self, api, sandbox, fake_time):
        sandbox.state.faults.set(
            fail_status=503, fail_times=1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"
        )

        assert api.list_models()
        assert fake_time.sleeps == [0.5]

    def test_a_long_retry_after_beyond_the_budget_is_reported_not_waited(self, sandbox, fake_time):
        sandbox.state.faults.set(fail_status=429, fail_times=5, retry_after="30")
        api = make_api(sandbox.url, fake_time, budget=10)

        with pytest.raises(remote.ApiRateLimited) as info:
            api.list_models()

        assert info.value.retry_after == 30
        assert "Try again in 30 s" in info.value.message
        assert fake_time.sleeps == []
        assert len(sandbox.state.requests) == 1

    def test_the_total_time_is_bounded(self, sandbox, fake_time):
        sandbox.state.faults.set(fail_status=502, fail_times=100)
        api = make_api(
            sandbox.url,
            fake_time,
            max_retries=100,
            backoff=1,
            multiplier=2,
            max_backoff=8,
            budget=10,
        )

        with pytest.raises(remote.ApiUnavailable):
            api.list_models()

        assert sum(fake_time.sleeps) <= 10
        assert len(fake_time.sleeps) == 3  # 1 + 2 + 4 = 7; 8 more would pass 10

    def test_client_errors_are_not_retried(self, api, sandbox, fake_time):
        sandbox.state.faults.set(fail_status=400, fail_times=5)

        with pytest.raises(remote.ApiRejected):
            api.list_models()

        assert fake_time.sleeps == []

    def test_every_change_is_retried_on_429(self, api, sandbox, fake_time):
        ft = first_fine_tuned(sandbox)
        sandbox.state.faults.set(fail_status=429, fail_times=1, retry_after="1", match="PATCH")

        assert api.update_model(ft["id"], name="after-rate-limit").name == "after-rate-limit"
        assert fake_time.sleeps == [1.0]

    def test_defaults_come_from_settings(self, settings):
        settings.MISTRAL_API_MAX_RETRIES = 7
        settings.MISTRAL_API_RETRY_BUDGET = 3.5

        policy = RetryPolicy.from_settings()

        assert (policy.max_retries, policy.budget) == (7, 3.5)


class TestConnectionPool:
    def test_one_client_per_process_with_keep_alive(self, sandbox, fake_time):
        first = make_api(sandbox.url, fake_time)
        second = make_api(sandbox.url, fake_time, key="sandbox-someone-else")

        for _ in range(5):
            first.list_models()
            second.list_models()

        assert remote.http_pool() is remote.http_pool()
        peers = {r.peer for r in sandbox.state.requests}
        assert len(sandbox.state.requests) == 10
        assert len(peers) == 1  # ten sequential calls shared one kept-alive connection

    def test_each_request_carries_its_own_key(self, sandbox, fake_time):
        make_api(sandbox.url, fake_time, key="sandbox-a").list_models()
        make_api(sandbox.url, fake_time, key="sandbox-b").list_models()

        assert [r.key_fingerprint for r in sandbox.state.requests] == [
            fingerprint("sandbox-a"),
            fingerprint("sandbox-b"),
        ]


class TestRateGate:
    def test_a_429_makes_every_call_sharing_the_gate_wait(self, sandbox, fake_time):
        gate = remote.RateGate(clock=fake_time.clock, sleep=fake_time.sleep)
        first = make_api(sandbox.url, fake_time)
        second = make_api(sandbox.url, fake_time, key="sandbox-sibling")
        first.gate = second.gate = gate
        sandbox.state.faults.set(fail_status=429, fail_times=1, retry_after="3")

        first.list_models()  # told to wait 3 s: it waits, and so will its siblings
        fake_time.now -= 3  # as if the sibling started right after the 429
        second.list_models()

        assert fake_time.sleeps == [3.0, 3.0]

    def test_a_call_gives_up_if_the_gate_stays_closed_past_its_budget(self, sandbox, fake_time):
        gate = remote.RateGate(clock=fake_time.clock, sleep=fake_time.sleep)
        gate.hold(120)
        api = make_api(sandbox.url, fake_time, budget=10)
        api.gate = gate

        with pytest.raises(remote.ApiRateLimited) as info:
            api.list_models()

        assert info.value.retry_after == 120
        assert sandbox.state.requests == []
