"""Issue 11 in the sandbox: the per-key rate limiter, Cloudflare pages, odd cards,
dropped fields, unserved methods and seeded ids with a user suffix. Over HTTP; the
rate limiter runs on a fake clock, so everything is decided by counts."""

from __future__ import annotations

import re

import httpx
import pytest

from models_admin.sandbox import SandboxServer, seed
from tests.test_remote import FakeTime, make_api

KEY = "sandbox-faults-tests"
SUFFIXED = re.compile(r"^ft:[a-z0-9.-]+:[0-9a-f]{8}:\d{8}:[a-z0-9-]+:[0-9a-f]{8}$")


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def http(sandbox):
    with httpx.Client(base_url=sandbox.url, headers=auth(), timeout=5, trust_env=False) as client:
        yield client


@pytest.fixture
def clock(sandbox, monkeypatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(sandbox.state.faults, "clock", fake.clock)
    return fake


class TestRateLimit:
    def test_over_the_limit_is_429_with_retry_after(self, sandbox, http, clock):
        sandbox.state.faults.set(rate_limit=2)

        statuses = [http.get("/v1/models").status_code for _ in range(3)]
        refused = http.get("/v1/models")

        assert statuses == [200, 200, 429]
        assert refused.json()["type"] == "rate_limited"
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["retry-after-ms"] == "500"
        assert refused.headers["x-ratelimit-limit-req-second"] == "2"
        assert refused.headers["x-ratelimit-remaining-req-second"] == "0"

    def test_tokens_come_back_with_time(self, sandbox, http, clock):
        sandbox.state.faults.set(rate_limit=2)
        assert [http.get("/v1/models").status_code for _ in range(3)] == [200, 200, 429]

        clock.now += 0.5
        after_half_a_second = [http.get("/v1/models").status_code for _ in range(2)]

        assert after_half_a_second == [200, 429]

    def test_every_answer_says_what_is_left(self, sandbox, http, clock):
        sandbox.state.faults.set(rate_limit=5)

        remaining = [
            http.get("/v1/models").headers["x-ratelimit-remaining-req-second"] for _ in range(3)
        ]

        assert remaining == ["4", "3", "2"]

    def test_each_key_has_its_own_bucket(self, sandbox, http, clock):
        sandbox.state.faults.set(rate_limit=1)

        mine = [http.get("/v1/models").status_code for _ in range(2)]
        theirs = http.get("/v1/models", headers=auth("sandbox-someone-else")).status_code

        assert (mine, theirs) == ([200, 429], 200)

    def test_a_refused_request_spends_no_other_fault(self, sandbox, http, clock):
        sandbox.state.faults.set(rate_limit=1, fail_status=503, fail_times=1)
        http.get("/v1/models")  # takes the only token, and the 503

        refused = http.get("/v1/models")

        assert refused.status_code == 429
        assert sandbox.state.faults.fail_times == 0

    def test_it_is_set_through_the_control_endpoint_and_cleared(self, sandbox, http, clock):
        assert http.post("/_sandbox/faults", json={"rate_limit": 1}).json()["rate_limit"] == 1

        statuses = [http.get("/v1/models").status_code for _ in range(2)]
        http.delete("/_sandbox/faults")

        assert statuses == [200, 429]
        assert http.get("/v1/models").status_code == 200
        assert "x-ratelimit-limit-req-second" not in http.get("/v1/models").headers

    @pytest.mark.parametrize("value", [-1, "fast", True])
    def test_a_bad_limit_is_refused(self, http, value):
        response = http.post("/_sandbox/faults", json={"rate_limit": value})

        assert response.status_code == 400
        assert "rate_limit must be a number >= 0" in response.json()["detail"]

    def test_a_server_can_start_with_one(self):
        with SandboxServer(models=1, rate_limit=3) as server:
            assert server.state.faults.rate_limit == 3
            server.state.faults.clear()
            assert server.state.faults.rate_limit == 3  # the baseline stays

    def test_the_client_rides_it_out(self, sandbox, clock):
        # The client's sleeps advance the sandbox's clock: no wall-clock time passes.
        sandbox.state.faults.set(rate_limit=1)
        api = make_api(sandbox.url, clock, key=KEY)

        for _ in range(3):
            api.list_models()

        assert clock.sleeps == [1.0, 1.0]
        assert len(sandbox.state.requests) == 5  # 3 admitted, 2 refused then retried


class TestCloudflare:
    @pytest.mark.parametrize("status", [520, 521, 522, 523, 524])
    def test_it_answers_cloudflare_pages(self, sandbox, http, status):
        sandbox.state.faults.set(fail_status=status, fail_times=1)

        response = http.get("/v1/models")

        assert response.status_code == status
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert f"Error code {status}" in response.text and "cf-ray" in response.headers


class TestUnservedMethods:
    @pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "CONNECT"])
    @pytest.mark.parametrize("path", ["/v1/models", "/_sandbox/health", "/elsewhere"])
    def test_they_answer_405_json(self, http, method, path):
        response = http.request(method, path)

        assert response.status_code == 405
        assert response.json() == {"detail": "Method Not Allowed"}
        assert response.headers["allow"] == "GET, POST, PATCH, DELETE"

    def test_the_connection_stays_usable(self, http):
        http.request("TRACE", "/v1/models")

        assert http.get("/_sandbox/health").json() == {"ok": True}


class TestOddCards:
    def test_it_adds_one_card_per_breach(self, sandbox, http):
        response = http.post("/_sandbox/odd-cards")

        added = response.json()
        assert [card["name"] for card in added] == [
            "odd-null-job",
            "odd-no-root",
            "odd-archived-yes",
            "odd-unknown-type",
            "odd-no-id",
        ]
        assert added[0]["job"] is None and "root" not in added[1] and "id" not in added[4]
        listed = http.get("/v1/models").json()["data"]
        assert [card["name"] for card in listed[-5:]] == [card["name"] for card in added]

    def test_it_needs_a_sandbox_key(self, sandbox):
        response = httpx.post(f"{sandbox.url}/_sandbox/odd-cards", trust_env=False)

        assert response.status_code == 401


class TestDropFields:
    def test_the_change_happens_and_the_answer_lacks_them(self, sandbox, http):
        model_id = next(c["id"] for c in http.get("/v1/models").json()["data"] if "job" in c)
        sandbox.state.faults.set(drop_fields=["workspace_id", "archived"], match="^PATCH ")

        answer = http.patch(f"/v1/fine_tuning/models/{model_id}", json={"name": "x"}).json()

        assert "workspace_id" not in answer and "archived" not in answer
        assert answer["name"] == "x"
        assert http.get(f"/v1/models/{model_id}").json()["archived"] in (True, False)

    def test_a_list_loses_them_on_each_card(self, sandbox, http):
        sandbox.state.faults.set(drop_fields=["capabilities"])

        cards = http.get("/v1/models").json()["data"]

        assert cards and all("capabilities" not in card for card in cards)

    def test_they_must_be_a_list_of_names(self, http):
        response = http.post("/_sandbox/faults", json={"drop_fields": "root"})

        assert response.status_code == 400


class TestSuffixedIds:
    def test_some_seeded_ids_carry_a_user_suffix(self):
        cards = seed.inventory(KEY, 80).cards

        suffixed = [card["id"] for card in cards if SUFFIXED.match(card["id"])]

        assert suffixed, "no suffixed id among 80 models"
        assert all(not card_id.startswith("ft:classifier:") for card_id in suffixed)
        assert seed.inventory(KEY, 80).cards == cards  # still deterministic

    def test_the_suffix_comes_from_the_name(self):
        assert seed.user_suffix("00" + "0" * 30, "support-triage-v3") == "support-triage"
        assert seed.user_suffix("01" + "0" * 30, "support-triage-v3") is None
        assert seed.user_suffix("00" + "0" * 30, None) is None

    def test_the_client_reads_them(self, sandbox, clock):
        api = make_api(sandbox.url, clock, key=KEY)
        card = next(c for c in sandbox.state.workspace(KEY).models.values() if c.get("job"))
        suffixed = {**card, "id": card["id"].replace(card["job"][:8], f"my-bot:{card['job'][:8]}")}
        sandbox.state.workspace(KEY).put(suffixed)

        parsed = api.retrieve_model(suffixed["id"])

        assert parsed.id == suffixed["id"] and parsed.problems == ()
