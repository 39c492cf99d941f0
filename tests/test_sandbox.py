"""The sandbox over raw HTTP: the six operations, their errors, state, faults, control API."""

from __future__ import annotations

import json
import os
import re
import select
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from models_admin.sandbox import Faults, SandboxServer, SandboxState, fingerprint
from tests import openapi

LIST = "list_models_v1_models_get"
RETRIEVE = "retrieve_model_v1_models__model_id__get"
DELETE = "delete_model_v1_models__model_id__delete"
UPDATE = "jobs_api_routes_fine_tuning_update_fine_tuned_model"
ARCHIVE = "jobs_api_routes_fine_tuning_archive_fine_tuned_model"
UNARCHIVE = "jobs_api_routes_fine_tuning_unarchive_fine_tuned_model"

KEY = "sandbox-alice"
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
FT_ID = re.compile(
    r"^ft:(?P<classifier>classifier:)?(?P<root>[a-z0-9.-]+):(?P<org>[0-9a-f]{8}):(?P<day>\d{8}):(?:(?P<suffix>[a-z0-9-]+):)?(?P<job>[0-9a-f]{8})$"
)
REPO_ROOT = Path(__file__).resolve().parent.parent
# One TLS context for every client: building one per client costs ~35 ms, and these
# tests only ever speak plain HTTP to 127.0.0.1.
TLS = ssl.create_default_context()


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Hanging:
    """A GET /v1/models from another thread, made to hang (one hour) in the sandbox."""

    def __init__(self, server: SandboxServer) -> None:
        self.errors: list[httpx.HTTPError] = []
        self.responses: list[httpx.Response] = []
        server.state.faults.set(hang_s=3600, hang_times=1)
        arrived = len(server.state.requests) + 1
        self.thread = threading.Thread(target=self._get, args=(server.url,), daemon=True)
        self.thread.start()
        assert server.state.wait_for_requests(arrived)  # it is in the sandbox, hanging

    def _get(self, url: str) -> None:
        try:
            self.responses.append(
                httpx.get(f"{url}/v1/models", headers=auth(), timeout=60, verify=TLS)
            )
        except httpx.HTTPError as exc:
            self.errors.append(exc)

    def finished(self) -> bool:
        self.thread.join(30)  # a guard against a hung test, not a measurement
        return not self.thread.is_alive()


@pytest.fixture
def api(sandbox):
    with httpx.Client(verify=TLS, base_url=sandbox.url, headers=auth(), timeout=5) as client:
        yield client


@pytest.fixture
def control(sandbox):
    with httpx.Client(verify=TLS, base_url=sandbox.url, timeout=5) as client:
        yield client


def cards(api, **params) -> list[dict[str, Any]]:
    response = api.get("/v1/models", params=params)
    assert response.status_code == 200
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def fine_tuned(api, *, classifier: bool | None = None) -> list[dict[str, Any]]:
    found = [card for card in cards(api) if card["type"] == "fine-tuned"]
    if classifier is not None:
        found = [card for card in found if card["id"].startswith("ft:classifier:") is classifier]
    return found


def assert_object_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "object": "error",
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


class TestAuth:
    def test_it_accepts_sandbox_keys(self, api):
        assert api.get("/v1/models").status_code == 200

    def test_scheme_is_case_insensitive(self, control):
        assert (
            control.get("/v1/models", headers={"Authorization": "bearer sandbox-x"}).status_code
            == 200
        )

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer sk-live-123"},
            {"Authorization": "Basic sandbox-x"},
            {"Authorization": "Bearer"},
        ],
    )
    def test_it_rejects_other_credentials(self, control, headers):
        response = control.get("/v1/models", headers=headers)

        assert response.status_code == 401
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["message"] == "Unauthorized"
        assert REQUEST_ID.match(body["request_id"])
        assert set(body) == {"message", "request_id"}

    def test_request_ids_differ(self, control):
        first = control.get("/v1/models").json()["request_id"]
        second = control.get("/v1/models").json()["request_id"]

        assert first != second

    def test_every_operation_requires_auth(self, control):
        model_id = "ft:open-mistral-7b:b6e34a5e:20240719:20178c3c"
        calls = [
            ("GET", "/v1/models"),
            ("GET", f"/v1/models/{model_id}"),
            ("DELETE", f"/v1/models/{model_id}"),
            ("PATCH", f"/v1/fine_tuning/models/{model_id}"),
            ("POST", f"/v1/fine_tuning/models/{model_id}/archive"),
            ("DELETE", f"/v1/fine_tuning/models/{model_id}/archive"),
        ]

        statuses = {control.request(method, path).status_code for method, path in calls}

        assert statuses == {401}


class TestListModels:
    def test_it_validates_against_the_contract(self, api):
        response = api.get("/v1/models")

        assert response.headers["content-type"] == "application/json"
        body = response.json()
        openapi.validate(LIST, 200, body)
        assert body["object"] == "list"
        assert len([card for card in body["data"] if card["type"] == "fine-tuned"]) == 40

    def test_aliases_are_cards_of_their_own(self, api):
        by_id = {card["id"]: card for card in cards(api)}

        dated, latest = by_id["ministral-3b-2410"], by_id["ministral-3b-latest"]
        assert dated["aliases"] == ["ministral-3b-latest"]
        assert latest["aliases"] == ["ministral-3b-2410"]
        assert dated["name"] == latest["name"] == "ministral-3b-2410"
        assert dated["capabilities"] == latest["capabilities"]

    def test_base_catalogue_is_realistic(self, api):
        base = [card for card in cards(api) if card["type"] == "base"]
        ids = {card["id"] for card in base}

        for expected in (
            "mistral-large-latest",
            "mistral-small-latest",
            "mistral-medium-latest",
            "codestral-latest",
            "devstral-latest",
            "ministral-3b-latest",
            "ministral-8b-latest",
            "pixtral-large-latest",
            "open-mistral-nemo",
            "open-mistral-7b",
            "mistral-embed",
            "mistral-moderation-latest",
            "mistral-ocr-latest",
            "voxtral-small-latest",
        ):
            assert expected in ids
        assert all(card["owned_by"] == "mistralai" and card["internal"] is False for card in base)
        assert all(len(card["capabilities"]) == 14 for card in base)
        deprecated = [card for card in base if card["deprecation"]]
        assert {card["id"] for card in deprecated} >= {"open-mistral-7b", "codestral-2501"}
        assert all(
            card["deprecation"].endswith("Z") and card["deprecation_replacement_model"]
            for card in deprecated
        )
        by_id = {card["id"]: card for card in base}
        assert by_id["codestral-latest"]["capabilities"]["completion_fim"] is True
        assert by_id["mistral-ocr-latest"]["capabilities"]["ocr"] is True
        assert by_id["mistral-embed"]["default_model_temperature"] is None

    def test_base_created_is_the_response_time(self, api):
        before = int(time.time())
        base = [card for card in cards(api) if card["type"] == "base"]

        assert all(before <= card["created"] <= time.time() + 1 for card in base)

    def test_fine_tuned_cards_follow_the_id_format(self, api):
        models = fine_tuned(api)

        orgs = set()
        for card in models:
            match = FT_ID.match(card["id"])
            assert match, card["id"]
            assert match["root"] == card["root"]
            assert match["job"] == card["job"][:8]
            assert match["day"] == datetime.fromtimestamp(card["created"], tz=UTC).strftime(
                "%Y%m%d"
            )
            assert bool(match["classifier"]) is card["capabilities"]["classification"]
            assert (
                card["capabilities"]["completion_chat"]
                is not card["capabilities"]["classification"]
            )
            orgs.add((match["org"], card["owned_by"]))
            assert datetime(2024, 3, 1, tzinfo=UTC).timestamp() <= card["created"]
            assert card["created"] < datetime(2026, 11, 1, tzinfo=UTC).timestamp()
        assert len(orgs) == 1

    def test_archived_models_are_listed(self, api):
        archived = [card for card in fine_tuned(api) if card["archived"]]

        assert 1 <= len(archived) <= 20

    def test_provider_filters_on_owner(self, api):
        owner = fine_tuned(api)[0]["owned_by"]

        assert {card["type"] for card in cards(api, provider="mistralai")} == {"base"}
        assert {card["type"] for card in cards(api, provider=owner)} == {"fine-tuned"}
        assert cards(api, provider="openai") == []
        assert len(cards(api, provider="")) == len(cards(api))

    def test_model_filters_on_id_or_alias(self, api):
        some = fine_tuned(api)[3]

        assert {card["id"] for card in cards(api, model="ministral-3b-latest")} == {
            "ministral-3b-2410",
            "ministral-3b-latest",
        }
        assert cards(api, model=some["id"]) == [some]
        assert cards(api, model="nope") == []
        assert {
            card["id"] for card in cards(api, provider="mistralai", model="codestral-2412")
        } == {
            "codestral-2501",
            "codestral-2412",
            "codestral-2411-rc5",
        }


class TestRetrieveModel:
    def test_it_returns_a_fine_tuned_card(self, api):
        card = fine_tuned(api)[0]

        response = api.get(f"/v1/models/{card['id']}")

        assert response.status_code == 200
        assert response.json() == card
        openapi.validate(RETRIEVE, 200, response.json())

    def test_it_returns_a_base_card(self, api):
        response = api.get("/v1/models/mistral-small-latest")

        assert response.status_code == 200
        assert response.json()["type"] == "base"
        assert response.json()["aliases"] == ["mistral-small-2506"]
        openapi.validate(RETRIEVE, 200, response.json())

    def test_it_decodes_the_path_segment(self, api):
        card = fine_tuned(api)[0]

        response = api.get("/v1/models/" + card["id"].replace(":", "%3A"))

        assert response.json()["id"] == card["id"]

    def test_unknown_id_is_404(self, api):
        response = api.get("/v1/models/ft:open-mistral-7b:00000000:20240101:00000000")

        assert_object_error(
            response, 404, "Model 'ft:open-mistral-7b:00000000:20240101:00000000' not found"
        )

    def test_encoded_slash_is_just_an_unknown_id(self, api):
        assert_object_error(api.get("/v1/models/foo%2Fbar"), 404, "Model 'foo/bar' not found")


class TestDeleteModel:
    def test_it_deletes_a_fine_tuned_model(self, api):
        model_id = fine_tuned(api)[0]["id"]

        response = api.delete(f"/v1/models/{model_id}")

        assert response.status_code == 200
        assert response.json() == {"id": model_id, "object": "model", "deleted": True}
        openapi.validate(DELETE, 200, response.json())
        assert api.get(f"/v1/models/{model_id}").status_code == 404
        assert model_id not in {card["id"] for card in cards(api)}
        assert_object_error(
            api.delete(f"/v1/models/{model_id}"), 404, f"Model '{model_id}' not found"
        )

    @pytest.mark.parametrize("model_id", ["mistral-large-2411", "mistral-small-latest"])
    def test_base_models_are_403(self, api, model_id):
        assert_object_error(
            api.delete(f"/v1/models/{model_id}"), 403, "Base models cannot be deleted"
        )
        assert api.get(f"/v1/models/{model_id}").status_code == 200

    def test_unknown_id_is_404(self, api):
        assert_object_error(api.delete("/v1/models/nope"), 404, "Model 'nope' not found")


class TestUpdateModel:
    def test_it_renames_a_completion_model(self, api):
        card = fine_tuned(api, classifier=False)[0]

        response = api.patch(
            f"/v1/fine_tuning/models/{card['id']}",
            json={"name": "support-bot-v2", "description": "July data"},
        )

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        openapi.validate(UPDATE, 200, body)
        assert body["model_type"] == "completion"
        assert "classifier_targets" not in body
        assert set(body) == {
            "id", "object", "created", "owned_by", "workspace_id", "root", "root_version", "archived",
            "name", "description", "capabilities", "max_context_length", "aliases", "job", "model_type",
        }  # fmt: skip
        assert set(body["capabilities"]) == {
            "completion_chat", "completion_fim", "function_calling", "fine_tuning", "classification"
        }  # fmt: skip
        assert (body["id"], body["created"], body["owned_by"], body["job"], body["root"]) == (
            card["id"], card["created"], card["owned_by"], card["job"], card["root"],
        )  # fmt: skip
        assert (body["name"], body["description"]) == ("support-bot-v2", "July data")
        assert body["capabilities"]["completion_chat"] is True

    def test_it_renames_a_classifier(self, api):
        card = fine_tuned(api, classifier=True)[0]

        body = api.patch(f"/v1/fine_tuning/models/{card['id']}", json={"name": "intent-v9"}).json()

        openapi.validate(UPDATE, 200, body)
        assert body["model_type"] == "classifier"
        assert body["capabilities"]["classification"] is True
        assert body["capabilities"]["completion_chat"] is False
        assert body["classifier_targets"]
        for target in body["classifier_targets"]:
            assert target["loss_function"] in {"single_class", "multi_class"}
            assert target["labels"]

    def test_workspace_fields_are_stable(self, api):
        first, second = fine_tuned(api)[:2]

        one = api.patch(f"/v1/fine_tuning/models/{first['id']}", json={}).json()
        two = api.patch(f"/v1/fine_tuning/models/{second['id']}", json={}).json()

        assert one["workspace_id"] == two["workspace_id"]
        assert one["owned_by"] == two["owned_by"] == first["owned_by"]

    def test_change_is_persisted(self, api):
        card = fine_tuned(api)[0]

        api.patch(
            f"/v1/fine_tuning/models/{card['id']}", json={"name": "renamed", "description": "new"}
        )

        stored = api.get(f"/v1/models/{card['id']}").json()
        assert (stored["name"], stored["description"]) == ("renamed", "new")
        assert {c["id"]: c for c in cards(api)}[card["id"]]["name"] == "renamed"

    def test_null_clears_absent_keeps_unknown_is_ignored(self, api):
        model_id = fine_tuned(api)[0]["id"]
        api.patch(
            f"/v1/fine_tuning/models/{model_id}", json={"name": "keep", "description": "drop"}
        )

        body = api.patch(
            f"/v1/fine_tuning/models/{model_id}",
            json={"description": None, "archived": True, "extra": 1},
        ).json()

        assert (body["name"], body["description"], body["archived"]) == ("keep", None, False)
        assert api.get(f"/v1/models/{model_id}").json()["archived"] is False

    def test_limits_are_inclusive(self, api):
        model_id = fine_tuned(api)[0]["id"]

        response = api.patch(
            f"/v1/fine_tuning/models/{model_id}",
            json={"name": "n" * 128, "description": "d" * 2048},
        )

        assert response.status_code == 200

    def assert_422(self, response: httpx.Response, detail: list[dict[str, Any]]) -> None:
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert response.json() == {"detail": detail}
        openapi.validate_component("HTTPValidationError", response.json())

    def test_invalid_json_is_422(self, api):
        model_id = fine_tuned(api)[0]["id"]

        response = api.patch(
            f"/v1/fine_tuning/models/{model_id}",
            content=b'{"name": }',
            headers={"Content-Type": "application/json"},
        )

        self.assert_422(
            response,
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", 9],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": "Expecting value"},
                }
            ],
        )

    @pytest.mark.parametrize("payload", [[], "name", 3, None])
    def test_non_object_body_is_422(self, api, payload):
        model_id = fine_tuned(api)[0]["id"]

        response = api.patch(
            f"/v1/fine_tuning/models/{model_id}", content=json.dumps(payload).encode()
        )

        self.assert_422(
            response,
            [
                {
                    "type": "model_attributes_type",
                    "loc": ["body"],
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "input": payload,
                }
            ],
        )

    def test_missing_body_is_422(self, api):
        response = api.patch(f"/v1/fine_tuning/models/{fine_tuned(api)[0]['id']}")

        self.assert_422(
            response, [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
        )

    def test_wrong_types_are_422(self, api):
        model_id = fine_tuned(api)[0]["id"]

        response = api.patch(
            f"/v1/fine_tuning/models/{model_id}", json={"name": 123, "description": ["x"]}
        )

        self.assert_422(
            response,
            [
                {
                    "type": "string_type",
                    "loc": ["body", "name"],
                    "msg": "Input should be a valid string",
                    "input": 123,
                },
                {
                    "type": "string_type",
                    "loc": ["body", "description"],
                    "msg": "Input should be a valid string",
                    "input": ["x"],
                },
            ],
        )

    @pytest.mark.parametrize(("field", "limit"), [("name", 128), ("description", 2048)])
    def test_too_long_is_422(self, api, field, limit):
        card = fine_tuned(api)[0]
        value = "x" * (limit + 1)

        response = api.patch(f"/v1/fine_tuning/models/{card['id']}", json={field: value})

        self.assert_422(
            response,
            [
                {
                    "type": "string_too_long",
                    "loc": ["body", field],
                    "msg": f"String should have at most {limit} characters",
                    "input": value,
                    "ctx": {"max_length": limit},
                }
            ],
        )
        assert api.get(f"/v1/models/{card['id']}").json()[field] == card[field]

    def test_validation_comes_before_lookup(self, api):
        assert api.patch("/v1/fine_tuning/models/nope", json={"name": 1}).status_code == 422

    @pytest.mark.parametrize("model_id", ["mistral-small-latest", "nope"])
    def test_base_and_unknown_ids_are_404(self, api, model_id):
        response = api.patch(f"/v1/fine_tuning/models/{model_id}", json={"name": "x"})

        assert_object_error(response, 404, f"Model '{model_id}' not found")


class TestArchive:
    def test_archive_and_unarchive(self, api):
        model_id = next(card["id"] for card in fine_tuned(api) if not card["archived"])

        archived = api.post(f"/v1/fine_tuning/models/{model_id}/archive")
        assert archived.status_code == 200
        assert archived.json() == {"id": model_id, "object": "model", "archived": True}
        openapi.validate(ARCHIVE, 200, archived.json())
        assert api.get(f"/v1/models/{model_id}").json()["archived"] is True

        unarchived = api.delete(f"/v1/fine_tuning/models/{model_id}/archive")
        assert unarchived.status_code == 200
        assert unarchived.json() == {"id": model_id, "object": "model", "archived": False}
        openapi.validate(UNARCHIVE, 200, unarchived.json())
        assert api.get(f"/v1/models/{model_id}").json()["archived"] is False

    def test_it_is_idempotent(self, api):
        model_id = fine_tuned(api)[0]["id"]

        assert api.post(f"/v1/fine_tuning/models/{model_id}/archive").status_code == 200
        assert api.post(f"/v1/fine_tuning/models/{model_id}/archive").json()["archived"] is True
        assert api.delete(f"/v1/fine_tuning/models/{model_id}/archive").status_code == 200
        assert api.delete(f"/v1/fine_tuning/models/{model_id}/archive").json()["archived"] is False

    @pytest.mark.parametrize("method", ["POST", "DELETE"])
    @pytest.mark.parametrize("model_id", ["mistral-large-latest", "ft:nope"])
    def test_base_and_unknown_ids_are_404(self, api, method, model_id):
        response = api.request(method, f"/v1/fine_tuning/models/{model_id}/archive")

        assert_object_error(response, 404, f"Model '{model_id}' not found")


class TestRouting:
    @pytest.mark.parametrize(
        "path", ["/v1/modelz", "/v1/models/a/b", "/v1/fine_tuning/jobs", "/v1/models/", "/v1", "/"]
    )
    def test_unknown_route_is_the_gateway_404(self, control, path):
        response = control.get(path)

        assert response.status_code == 404
        assert response.json()["message"] == "no Route matched with those values"
        assert REQUEST_ID.match(response.json()["request_id"])

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("PUT", "/v1/models", "GET"),
            ("POST", "/v1/models/x", "GET, DELETE"),
            ("GET", "/v1/fine_tuning/models/x", "PATCH"),
            ("PATCH", "/v1/fine_tuning/models/x/archive", "POST, DELETE"),
        ],
    )
    def test_wrong_method_is_405(self, api, method, path, allow):
        response = api.request(method, path)

        assert response.status_code == 405
        assert response.json() == {"detail": "Method Not Allowed"}
        assert response.headers["allow"] == allow

    def test_routing_comes_before_auth(self, control):
        assert control.get("/v1/nothing").status_code == 404
        assert control.put("/v1/models").status_code == 401


class TestState:
    def test_changes_persist_until_reset(self, sandbox, api):
        model_id = fine_tuned(api)[0]["id"]
        api.delete(f"/v1/models/{model_id}")
        assert api.get(f"/v1/models/{model_id}").status_code == 404

        sandbox.state.reset()

        assert api.get(f"/v1/models/{model_id}").status_code == 200

    def test_workspaces_are_isolated_by_key(self, sandbox):
        with httpx.Client(verify=TLS, base_url=sandbox.url, headers=auth("sandbox-bob")) as bob:
            alice = httpx.Client(verify=TLS, base_url=sandbox.url, headers=auth("sandbox-alice"))
            alice_models, bob_models = fine_tuned(alice), fine_tuned(bob)

            alice.delete(f"/v1/models/{alice_models[0]['id']}")

            assert alice_models[0]["owned_by"] != bob_models[0]["owned_by"]
            assert not {c["id"] for c in alice_models} & {c["id"] for c in bob_models}
            assert fine_tuned(bob) == bob_models
            assert bob.get(f"/v1/models/{alice_models[1]['id']}").status_code == 404
            alice.close()

    def test_workspace_is_deterministic(self):
        one = SandboxState().workspace("sandbox-demo")
        two = SandboxState().workspace("sandbox-demo")

        assert one.models == two.models
        assert one.workspace_id == two.workspace_id
        assert SandboxState().workspace("sandbox-other").organization_id != one.organization_id
        assert SandboxState(models=41).workspace("sandbox-demo").models != one.models

    def test_reset_reseeds_identically(self, sandbox, api):
        before = fine_tuned(api)
        api.patch(f"/v1/fine_tuning/models/{before[0]['id']}", json={"name": "changed"})

        sandbox.state.reset()

        assert fine_tuned(api) == before

    def test_put_and_get(self, sandbox, api):
        workspace = sandbox.state.workspace(KEY)
        odd = {"id": "odd-one", "type": "something-new", "capabilities": {}}

        workspace.put(odd)

        assert workspace.get("odd-one") == odd
        assert cards(api)[-1] == odd
        assert api.get("/v1/models/odd-one").json() == odd
        with pytest.raises(ValueError):
            workspace.put({"name": "no id"})

    def test_put_replaces_in_place(self, sandbox, api):
        workspace = sandbox.state.workspace(KEY)
        first = fine_tuned(api)[0]
        position = [card["id"] for card in cards(api)].index(first["id"])

        workspace.put({**first, "name": "<img src=x onerror=alert(1)>"})

        listed = cards(api)
        assert listed[position]["name"] == "<img src=x onerror=alert(1)>"
        assert len(listed) == len(workspace.models)


class TestSeed:
    def test_it_scales_to_ten_thousand(self):
        workspace = SandboxState(models=10_000).workspace("sandbox-big")

        models = [card for card in workspace.models.values() if card["type"] == "fine-tuned"]
        assert len(models) == 10_000
        assert len({card["id"] for card in models}) == 10_000
        assert len({card["job"] for card in models}) == 10_000
        assert 0.17 < sum(card["archived"] for card in models) / 10_000 < 0.23
        assert {card["root"] for card in models} == {
            "open-mistral-7b",
            "mistral-small-latest",
            "codestral-latest",
            "open-mistral-nemo",
            "mistral-large-latest",
            "ministral-3b-latest",
            "ministral-8b-latest",
        }
        assert any(card["name"] is None for card in models)
        assert any(card["description"] is None for card in models)
        assert all(FT_ID.match(card["id"]) for card in models)
        assert all(
            card["id"].startswith("ft:classifier:") == card["root"].startswith("ministral")
            for card in models
        )
        created = [card["created"] for card in models]
        assert created == sorted(created)
        assert datetime.fromtimestamp(created[0], tz=UTC) < datetime(2024, 4, 1, tzinfo=UTC)
        assert datetime.fromtimestamp(created[-1], tz=UTC) > datetime(2026, 10, 1, tzinfo=UTC)

    def test_ten_thousand_are_served(self):
        with SandboxServer(models=10_000) as big:
            response = httpx.get(f"{big.url}/v1/models", headers=auth(), timeout=10, verify=TLS)

        models = [card for card in response.json()["data"] if card["type"] == "fine-tuned"]
        assert len(models) == 10_000
        assert len({card["id"] for card in models}) == 10_000

    def test_zero_models(self):
        workspace = SandboxState(models=0).workspace("sandbox-empty")

        assert all(card["type"] == "base" for card in workspace.models.values())


class TestKeepAlive:
    def test_requests_share_one_connection(self, sandbox):
        with httpx.Client(verify=TLS, base_url=sandbox.url, headers=auth()) as client:
            responses = [
                client.get("/v1/models"),
                client.get("/v1/models/nope"),
                client.patch("/v1/fine_tuning/models/nope", content=b"{"),
                client.get("/v1/unknown"),
                client.get("/_sandbox/health"),
                client.get("/v1/models/mistral-embed"),
            ]
            ports = {
                r.extensions["network_stream"].get_extra_info("client_addr")[1] for r in responses
            }

        assert [r.status_code for r in responses] == [200, 404, 422, 404, 200, 200]
        assert len(ports) == 1
        assert all("content-length" in r.headers for r in responses)
        assert all(r.http_version == "HTTP/1.1" for r in responses)


class TestServerLifecycle:
    def test_url_is_the_bound_port(self):
        server = SandboxServer()

        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.url.endswith(f":{server.port}")
        with server:
            assert httpx.get(f"{server.url}/_sandbox/health", verify=TLS).json() == {"ok": True}

    def test_stop_cuts_idle_and_hanging_connections(self):
        server = SandboxServer().start()
        idle = httpx.Client(base_url=server.url, headers=auth(), verify=TLS)
        idle.get("/v1/models")
        hanging = Hanging(server)

        server.stop()
        idle.close()

        assert hanging.finished()
        assert len(hanging.errors) == 1  # dropped, not answered
        assert server.state.faults.hang_times == 0


class TestFaults:
    def test_latency(self, sandbox, api):
        # The sandbox cannot answer before its latency has passed, so a client that
        # waits a tenth of it always times out; one that waits longer gets the answer.
        sandbox.state.faults.set(latency_ms=3000)

        with pytest.raises(httpx.ReadTimeout):
            api.get("/v1/models/mistral-embed", timeout=0.3)
        sandbox.state.faults.set(latency_ms=1)

        assert api.get("/v1/models/mistral-embed").status_code == 200
        assert len(sandbox.state.requests) == 2

    def test_constructor_latency_survives_reset(self):
        state = SandboxState(latency_ms=70)
        state.faults.set(latency_ms=0, fail_times=3)

        state.reset()

        assert state.faults.to_json() == Faults(latency_ms=70).to_json()

    def test_hang_makes_the_client_time_out_once(self, sandbox, api):
        sandbox.state.faults.set(hang_s=1.0, hang_times=1)

        with pytest.raises(httpx.ReadTimeout):
            api.get("/v1/models", timeout=0.2)

        assert api.get("/v1/models", timeout=2).status_code == 200
        assert sandbox.state.faults.hang_times == 0

    def test_fail_times_is_consumed_exactly(self, sandbox, api):
        sandbox.state.faults.set(fail_status=503, fail_times=2)

        statuses = [api.get("/v1/models").status_code for _ in range(3)]

        assert statuses == [503, 503, 200]
        assert sandbox.state.faults.fail_times == 0

    def test_fail_times_without_status_uses_error_status(self, sandbox, api):
        sandbox.state.faults.set(error_status=502, fail_times=1)

        assert api.get("/v1/models").status_code == 502

    def test_counters_are_atomic_under_concurrency(self, sandbox):
        sandbox.state.faults.set(fail_status=500, fail_times=10)
        statuses: list[int] = []

        def call() -> None:
            with httpx.Client(verify=TLS, base_url=sandbox.url, headers=auth()) as client:
                statuses.extend(
                    client.get("/v1/models/mistral-embed").status_code for _ in range(3)
                )

        threads = [threading.Thread(target=call) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(statuses).count(500) == 10
        assert statuses.count(200) == 20

    def test_faults_come_before_auth(self, sandbox, control):
        sandbox.state.faults.set(fail_status=503, fail_times=1)

        assert control.get("/v1/models").status_code == 503
        assert control.get("/v1/models").status_code == 401

    def test_match_restricts_one_shot_faults(self, sandbox, api):
        model_id = fine_tuned(api)[0]["id"]
        sandbox.state.faults.set(match=r"^PATCH /v1/fine_tuning/", fail_status=500, fail_times=1)

        assert api.get("/v1/models").status_code == 200
        assert sandbox.state.faults.fail_times == 1
        assert api.patch(f"/v1/fine_tuning/models/{model_id}", json={}).status_code == 500
        assert api.patch(f"/v1/fine_tuning/models/{model_id}", json={}).status_code == 200

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (
                403,
                {
                    "object": "error",
                    "message": "Forbidden",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                },
            ),
            (
                404,
                {
                    "object": "error",
                    "message": "Not Found",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                },
            ),
            (
                429,
                {
                    "object": "error",
                    "message": "Rate limit exceeded",
                    "type": "rate_limited",
                    "param": None,
                    "code": "1300",
                    "raw_status_code": 429,
                },
            ),
            (500, {"detail": "Internal Server Error"}),
        ],
    )
    def test_default_json_bodies(self, sandbox, api, status, body):
        sandbox.state.faults.set(fail_status=status, fail_times=1)

        response = api.get("/v1/models")

        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert response.json() == body

    def test_default_401_and_422_bodies(self, sandbox, api):
        sandbox.state.faults.set(fail_status=401, fail_times=1)
        unauthorized = api.get("/v1/models")
        sandbox.state.faults.set(fail_status=422, fail_times=1)
        invalid = api.get("/v1/models")

        assert unauthorized.json()["message"] == "Unauthorized"
        assert invalid.headers["content-type"] == "application/json; charset=utf-8"
        openapi.validate(LIST, 422, invalid.json())

    @pytest.mark.parametrize("status", [502, 503, 504])
    def test_gateway_errors_are_plain_text(self, sandbox, api, status):
        sandbox.state.faults.set(fail_status=status, fail_times=1)

        response = api.get("/v1/models")

        assert response.status_code == status
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.text.startswith("upstream")

    def test_fail_body(self, sandbox, api):
        sandbox.state.faults.set(
            fail_status=422, fail_times=2, fail_body={"detail": "Model not available"}
        )
        as_json = api.get("/v1/models")
        sandbox.state.faults.set(fail_times=1, fail_body="oops")
        as_text = api.get("/v1/models")

        assert as_json.json() == {"detail": "Model not available"}
        assert (as_text.text, as_text.headers["content-type"]) == (
            "oops",
            "text/plain; charset=utf-8",
        )

    def test_retry_after_header(self, sandbox, api):
        sandbox.state.faults.set(fail_status=429, fail_times=1, retry_after="2")

        limited = api.get("/v1/models")
        normal = api.get("/v1/models")

        assert limited.headers["retry-after"] == "2"
        assert "retry-after" not in normal.headers

    def test_error_rate_is_reproducible(self, sandbox, api):
        def run() -> list[int]:
            sandbox.state.faults.set(error_rate=0.5, error_status=503)
            return [api.get("/v1/models/mistral-embed").status_code for _ in range(20)]

        first, second = run(), run()
        sandbox.state.faults.set(seed=7)
        third = [api.get("/v1/models/mistral-embed").status_code for _ in range(20)]

        assert first == second
        assert set(first) == {200, 503}
        assert third != first

    def test_malformed_truncated(self, sandbox, api):
        sandbox.state.faults.set(malformed_times=1, malformed_kind="truncated")

        response = api.get("/v1/models")

        assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
        with pytest.raises(json.JSONDecodeError):
            response.json()
        assert api.get("/v1/models").json()["object"] == "list"

    def test_malformed_html(self, sandbox, api):
        sandbox.state.faults.set(malformed_times=1, malformed_kind="html")

        response = api.get("/v1/models/mistral-embed")

        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.text.startswith("<!DOCTYPE html>")

    def test_malformed_wrong_shape(self, sandbox, api):
        sandbox.state.faults.set(malformed_times=2, malformed_kind="wrong_shape")

        listing = api.get("/v1/models")
        card = api.get("/v1/models/mistral-embed")

        assert isinstance(listing.json()["data"], str)
        assert "id" not in card.json()
        with pytest.raises(jsonschema.ValidationError):
            openapi.validate(LIST, 200, listing.json())
        with pytest.raises(jsonschema.ValidationError):
            openapi.validate(RETRIEVE, 200, card.json())

    def test_malformed_changes_nothing(self, sandbox, api):
        model_id = fine_tuned(api)[0]["id"]
        sandbox.state.faults.set(malformed_times=1)

        assert api.delete(f"/v1/models/{model_id}").status_code == 200

        assert api.get(f"/v1/models/{model_id}").status_code == 200

    @pytest.mark.parametrize(
        "changes",
        [
            {"nope": 1},
            {"latency_ms": -1},
            {"latency_ms": 1.5},
            {"error_rate": 2},
            {"error_status": 200},
            {"fail_status": "503"},
            {"fail_times": True},
            {"fail_body": 5},
            {"malformed_kind": "gzip"},
            {"hang_s": -1},
            {"match": "("},
            {"retry_after": 1.5},
        ],
    )
    def test_set_validates(self, sandbox, changes):
        before = sandbox.state.faults.to_json()

        with pytest.raises(ValueError):
            sandbox.state.faults.set(**{"fail_times": 3, **changes})

        assert sandbox.state.faults.to_json() == before

    def test_clear(self, sandbox):
        sandbox.state.faults.set(fail_times=3, match="x", error_rate=0.1)

        sandbox.state.faults.clear()

        assert sandbox.state.faults.to_json() == Faults().to_json()


class TestControlApi:
    def test_health(self, control):
        assert control.get("/_sandbox/health").json() == {"ok": True}

    def test_faults_over_http(self, control, api):
        defaults = control.get("/_sandbox/faults").json()
        assert defaults == Faults().to_json()

        configured = control.post(
            "/_sandbox/faults", json={"fail_status": 429, "fail_times": 1, "retry_after": 3}
        )
        assert configured.status_code == 200
        assert configured.json()["retry_after"] == "3"

        limited = api.get("/v1/models")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "3"
        assert control.get("/_sandbox/faults").json()["fail_times"] == 0

        assert control.delete("/_sandbox/faults").json() == defaults

    def test_every_fault_kind_over_http(self, control, api):
        control.post(
            "/_sandbox/faults",
            json={"latency_ms": 100, "hang_s": 1, "hang_times": 1, "match": "^GET /v1/models$"},
        )
        with pytest.raises(httpx.ReadTimeout):
            api.get("/v1/models", timeout=0.3)
        control.post(
            "/_sandbox/faults",
            json={"latency_ms": 0, "malformed_times": 1, "malformed_kind": "html"},
        )
        assert api.get("/v1/models").headers["content-type"].startswith("text/html")
        control.post("/_sandbox/faults", json={"error_rate": 1, "error_status": 500, "match": None})
        assert api.get("/v1/models/x").status_code == 500

    @pytest.mark.parametrize("body", [b'{"nope": 1}', b"[1]", b"{", b'{"error_rate": "high"}'])
    def test_bad_faults_are_400(self, control, body):
        response = control.post("/_sandbox/faults", content=body)

        assert response.status_code == 400
        assert response.json()["detail"]

    def test_control_is_not_faulted_or_recorded(self, sandbox, control):
        # A faulted request would take 60 s (the client gives up after 5) and use up
        # the one-shot counters.
        sandbox.state.faults.set(fail_times=5, hang_s=60, hang_times=3, malformed_times=2)

        assert control.get("/_sandbox/health").status_code == 200
        assert control.get("/_sandbox/requests").json() == []
        faults = sandbox.state.faults
        assert (faults.fail_times, faults.hang_times, faults.malformed_times) == (5, 3, 2)

    def test_reset(self, sandbox, control, api):
        model_id = fine_tuned(api)[0]["id"]
        api.delete(f"/v1/models/{model_id}")
        control.post("/_sandbox/faults", json={"latency_ms": 5})

        assert control.post("/_sandbox/reset").json() == {"ok": True}

        assert sandbox.state.faults.latency_ms == 0
        assert sandbox.state.requests == []
        assert api.get(f"/v1/models/{model_id}").status_code == 200

    def test_reset_drops_requests_sleeping_in_a_hang(self, sandbox, control):
        hanging = Hanging(sandbox)

        control.post("/_sandbox/reset")

        assert hanging.finished()
        assert len(hanging.errors) == 1  # dropped, not answered
        assert sandbox.state.in_flight == 0

    def test_unknown_and_wrong_method(self, control):
        assert control.get("/_sandbox/nope").status_code == 404
        assert control.get("/_sandbox/reset").status_code == 405

    def test_post_model_completes_a_partial_card(self, control, api):
        response = control.post(
            "/_sandbox/models", json={"name": "<img src=x onerror=alert(1)>"}, headers=auth()
        )

        assert response.status_code == 200
        card = response.json()
        openapi.validate(RETRIEVE, 200, card)
        assert FT_ID.match(card["id"])
        assert card["owned_by"] == fine_tuned(api)[0]["owned_by"]
        assert cards(api)[-1] == card
        update = api.patch(f"/v1/fine_tuning/models/{card['id']}", json={}).json()
        openapi.validate(UPDATE, 200, update)
        assert update["name"] == "<img src=x onerror=alert(1)>"

    def test_post_model_raw_and_base(self, control, api):
        raw = control.post(
            "/_sandbox/models?raw=1", json={"id": "weird", "type": "future"}, headers=auth()
        )
        base = control.post(
            "/_sandbox/models", json={"id": "my-base", "type": "base"}, headers=auth()
        )

        assert raw.json() == {"id": "weird", "type": "future"}
        openapi.validate(RETRIEVE, 200, base.json())
        assert api.delete("/v1/models/my-base").status_code == 403
        assert api.get("/v1/models/weird").json() == {"id": "weird", "type": "future"}

    def test_post_model_only_touches_the_callers_workspace(self, sandbox, control):
        control.post(
            "/_sandbox/models", json={"id": "mine", "type": "base"}, headers=auth("sandbox-carol")
        )

        assert sandbox.state.workspace("sandbox-carol").get("mine") is not None
        assert sandbox.state.workspace("sandbox-dave").get("mine") is None

    @pytest.mark.parametrize(
        ("headers", "body", "status"),
        [
            ({}, b"{}", 401),
            (auth("sk-real"), b"{}", 401),
            (auth(), b"[]", 400),
            (auth(), b"{", 400),
        ],
    )
    def test_post_model_errors(self, control, headers, body, status):
        assert control.post("/_sandbox/models", content=body, headers=headers).status_code == status

    def test_a_raw_model_needs_an_id(self, control):
        response = control.post("/_sandbox/models?raw=1", json={"name": "no id"}, headers=auth())

        assert response.status_code == 400
        assert response.json() == {"detail": "a card needs a string 'id'"}


class TestRequestLog:
    def test_waiting_for_requests_that_never_come_gives_up(self, sandbox, api):
        api.get("/v1/models")

        assert sandbox.state.wait_for_requests(1, timeout=0) is True
        assert sandbox.state.wait_for_requests(2, timeout=0) is False

    def test_it_records_v1_requests(self, sandbox, api):
        card = fine_tuned(api)[0]
        encoded = card["id"].replace(":", "%3A")
        sandbox.state.requests.clear()

        api.get("/v1/models", params={"provider": "mistralai"})
        api.patch(f"/v1/fine_tuning/models/{encoded}", json={"name": "x"})
        httpx.get(f"{sandbox.url}/v1/models", verify=TLS)
        api.get("/_sandbox/health")

        log = sandbox.state.requests
        assert [(r.method, r.path, r.query) for r in log] == [
            ("GET", "/v1/models", {"provider": "mistralai"}),
            ("PATCH", f"/v1/fine_tuning/models/{encoded}", {}),
            ("GET", "/v1/models", {}),
        ]
        assert log[1].json == {"name": "x"}
        assert log[0].json is None
        assert log[0].key_fingerprint == fingerprint(KEY)
        assert log[2].key_fingerprint is None
        assert KEY not in repr(log)

    def test_it_is_served_over_http(self, control, api):
        api.patch("/v1/fine_tuning/models/nope", json={"description": None})

        recorded = control.get("/_sandbox/requests").json()
        assert recorded[0].pop("peer").startswith("127.0.0.1:")
        assert recorded == [
            {
                "method": "PATCH",
                "path": "/v1/fine_tuning/models/nope",
                "query": {},
                "json": {"description": None},
                "key_fingerprint": fingerprint(KEY),
            }
        ]

    def test_faulted_requests_are_recorded(self, sandbox, api):
        sandbox.state.faults.set(fail_times=1)

        api.get("/v1/models")

        assert len(sandbox.state.requests) == 1

    def test_record_limit_keeps_the_newest(self):
        with SandboxServer(record_limit=2) as small:
            for path in ("/v1/a", "/v1/b", "/v1/c"):
                httpx.get(small.url + path, verify=TLS)

            assert [r.path for r in small.state.requests] == ["/v1/b", "/v1/c"]


class TestManagementCommand:
    @pytest.mark.parametrize(
        "command", [["manage.py", "sandbox"], ["-m", "models_admin.sandbox"]], ids=["manage", "m"]
    )
    def test_it_serves_until_terminated_without_settings_or_secrets(self, command):
        # No DJANGO_DEBUG, no secrets, no settings module: the sandbox needs none of them.
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
        }
        process = subprocess.Popen(
            [sys.executable, *command, "--port", "0", "--models", "5", "--quiet"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            ready, _, _ = select.select([process.stdout], [], [], 20)
            assert ready, "the command printed nothing"
            line = process.stdout.readline()
            match = re.search(
                r"on (http://127\.0\.0\.1:(\d+)) — any key starting with \"sandbox-\" works", line
            )
            assert match, line + process.stderr.read() if process.poll() is not None else line
            assert match[2] != "0"

            response = httpx.get(
                f"{match[1]}/v1/models", headers=auth("sandbox-demo"), timeout=5, verify=TLS
            )

            assert response.status_code == 200
            assert (
                len([card for card in response.json()["data"] if card["type"] == "fine-tuned"]) == 5
            )
        finally:
            process.terminate()
            process.wait(timeout=10)
            process.stdout.close()
            process.stderr.close()
