"""The official ``mistralai`` SDK against the sandbox: proof that it is faithful.

Runs twice, once per SDK major: 2.x in .venv (requirements/dev.txt) and 3.x in
.venv-sdk3 (requirements/sdk3.txt, ``make test-sdk3``). They cannot share one
environment: both are the ``mistralai`` distribution. Their models operations are the
same; what differs is the HTTP library: 3.x sends through ``httpx2`` (its own import
name, installed beside httpx), so the client handed to the SDK is built from the one
the installed SDK uses.

Every response the SDK receives is also captured raw (a response hook) and, at the
end of each test, validated against the published OpenAPI extract: 200s against the
operation's declared schema, 422s against HTTPValidationError.
"""

from __future__ import annotations

import importlib
import os
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from mistralai.client import Mistral, errors, models

from tests import openapi

KEY = "sandbox-sdk"
TLS = ssl.create_default_context()  # shared: one per client costs ~35 ms
SDK_VERSION = version("mistralai")
SDK_MAJOR = int(SDK_VERSION.split(".")[0])
sdk_http: Any = importlib.import_module("httpx2" if SDK_MAJOR >= 3 else "httpx")
# The lock this environment was installed from: make test-sdk3 names requirements/sdk3.txt.
LOCK = Path(__file__).resolve().parent.parent / os.environ.get("SDK_LOCK", "requirements/dev.txt")


class TestEnvironment:
    def test_it_drives_the_sdk_the_lock_pins(self):
        pinned = re.search(r"^mistralai==(\S+)$", LOCK.read_text(), re.MULTILINE)

        assert pinned, f"{LOCK.name} pins no mistralai"
        assert pinned[1] == SDK_VERSION, (
            f"mistralai {SDK_VERSION} is installed, {LOCK.name} pins {pinned[1]} "
            "(the 3.x environment runs through make test-sdk3)"
        )

    def test_its_own_client_is_the_kind_these_tests_hand_it(self, sandbox):
        with Mistral(api_key=KEY, server_url=sandbox.url) as own:
            assert isinstance(own.sdk_configuration.client, sdk_http.Client)


class Capture:
    """Raw (method, path, status, body) of every response, for schema validation."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, str, int, Any]] = []
        self.validated: set[tuple[str, int]] = set()

    def hook(self, response: Any) -> None:
        response.read()
        request = response.request
        self.responses.append(
            (request.method, request.url.raw_path.decode(), response.status_code, response)
        )

    def validate_all(self) -> None:
        for method, path, status, response in self.responses:
            operation = openapi.operation_for(method, path)
            assert operation is not None, f"{method} {path} is not one of the six operations"
            if status == 200:
                assert response.headers["content-type"] == "application/json"
                openapi.validate(operation, 200, response.json())
            elif status == 422:
                openapi.validate_component("HTTPValidationError", response.json())
            else:
                continue
            self.validated.add((operation, status))


@pytest.fixture
def capture():
    captured = Capture()
    yield captured
    captured.validate_all()


@contextmanager
def make_client(sandbox, capture: Capture, key: str = KEY) -> Iterator[Mistral]:
    # The SDK leaves a client it was given open, so close it here.
    with sdk_http.Client(verify=TLS, event_hooks={"response": [capture.hook]}, timeout=5) as http:
        yield Mistral(api_key=key, server_url=sandbox.url, client=http)


@pytest.fixture
def mistral(sandbox, capture):
    with make_client(sandbox, capture) as client:
        yield client


def fine_tuned(mistral: Mistral, *, classifier: bool) -> list[models.FTModelCard]:
    return [
        card
        for card in mistral.models.list().data or []
        if isinstance(card, models.FTModelCard)
        and card.id.startswith("ft:classifier:") is classifier
    ]


class TestList:
    def test_it_parses_every_card(self, mistral):
        listing = mistral.models.list()

        assert isinstance(listing, models.ModelList)
        data = listing.data or []
        kinds = {type(card) for card in data}
        assert kinds == {models.BaseModelCard, models.FTModelCard}
        assert len([card for card in data if isinstance(card, models.FTModelCard)]) == 40
        assert any(card.archived for card in data if isinstance(card, models.FTModelCard))

    def test_provider_and_model_parameters(self, mistral, sandbox):
        base = mistral.models.list(provider="mistralai")
        aliased = mistral.models.list(model="codestral-latest")

        assert base.data
        assert all(isinstance(card, models.BaseModelCard) for card in base.data)
        assert {card.id for card in aliased.data or []} == {"codestral-2508", "codestral-latest"}
        assert [r.query for r in sandbox.state.requests] == [
            {"provider": "mistralai"},
            {"model": "codestral-latest"},
        ]


class TestRetrieve:
    def test_base_model(self, mistral):
        card = mistral.models.retrieve(model_id="ministral-3b-latest")

        assert isinstance(card, models.BaseModelCard)
        assert card.name == "ministral-3b-2410"
        assert card.capabilities.fine_tuning is True

    def test_fine_tuned_model(self, mistral, sandbox):
        wanted = fine_tuned(mistral, classifier=False)[0]

        card = mistral.models.retrieve(model_id=wanted.id)

        assert isinstance(card, models.FTModelCard)
        assert (card.id, card.job, card.root) == (wanted.id, wanted.job, wanted.root)
        # The SDK puts the id in the path unescaped, colons included.
        assert sandbox.state.requests[-1].path == f"/v1/models/{wanted.id}"

    def test_unknown_model_is_404(self, mistral):
        with pytest.raises(errors.SDKError) as caught:
            mistral.models.retrieve(model_id="ft:open-mistral-7b:00000000:20240101:00000000")

        assert caught.value.status_code == 404
        assert "not found" in caught.value.body


class TestUpdate:
    def test_completion_model(self, mistral):
        wanted = fine_tuned(mistral, classifier=False)[0]

        updated = mistral.models.update(model_id=wanted.id, name="support-bot-v2", description=None)

        assert isinstance(updated, models.CompletionFineTunedModel)
        assert (updated.name, updated.description, updated.model_type) == (
            "support-bot-v2",
            None,
            "completion",
        )
        assert mistral.models.retrieve(model_id=wanted.id).name == "support-bot-v2"

    def test_classifier_model(self, mistral):
        wanted = fine_tuned(mistral, classifier=True)[0]

        updated = mistral.models.update(model_id=wanted.id, description="Routes tickets")

        assert isinstance(updated, models.ClassifierFineTunedModel)
        assert updated.description == "Routes tickets"
        assert updated.name == wanted.name
        assert updated.classifier_targets
        assert all(
            t.loss_function in {"single_class", "multi_class"} for t in updated.classifier_targets
        )

    def test_too_long_name_is_422(self, mistral):
        wanted = fine_tuned(mistral, classifier=False)[0]

        with pytest.raises(errors.SDKError) as caught:
            mistral.models.update(model_id=wanted.id, name="x" * 129)

        assert caught.value.status_code == 422
        assert "string_too_long" in caught.value.body


class TestArchiveAndDelete:
    def test_archive_unarchive_delete(self, mistral):
        wanted = fine_tuned(mistral, classifier=False)[0]

        archived = mistral.models.archive(model_id=wanted.id)
        assert isinstance(archived, models.ArchiveModelResponse)
        assert (archived.id, archived.archived) == (wanted.id, True)
        assert mistral.models.retrieve(model_id=wanted.id).archived is True

        unarchived = mistral.models.unarchive(model_id=wanted.id)
        assert isinstance(unarchived, models.UnarchiveModelResponse)
        assert unarchived.archived is False

        deleted = mistral.models.delete(model_id=wanted.id)
        assert isinstance(deleted, models.DeleteModelResponse)
        assert (deleted.id, deleted.deleted) == (wanted.id, True)
        assert wanted.id not in {card.id for card in mistral.models.list().data or []}

    def test_deleting_a_base_model_is_403(self, mistral):
        with pytest.raises(errors.SDKError) as caught:
            mistral.models.delete(model_id="mistral-large-latest")

        assert caught.value.status_code == 403
        assert "Base models cannot be deleted" in caught.value.body


class TestAuth:
    def test_non_sandbox_key_is_401(self, sandbox, capture):
        with (
            make_client(sandbox, capture, key="sk-not-a-sandbox-key") as client,
            pytest.raises(errors.SDKError) as caught,
        ):
            client.models.list()

        assert caught.value.status_code == 401
        assert isinstance(caught.value, errors.MistralError)


class TestContract:
    def test_every_shape_validates(self, mistral, capture):
        completion = fine_tuned(mistral, classifier=False)[0]
        classifier = fine_tuned(mistral, classifier=True)[0]

        mistral.models.retrieve(model_id="mistral-small-latest")
        mistral.models.retrieve(model_id=completion.id)
        mistral.models.update(model_id=completion.id, name="a")
        mistral.models.update(model_id=classifier.id, name="b")
        mistral.models.archive(model_id=completion.id)
        mistral.models.unarchive(model_id=completion.id)
        mistral.models.delete(model_id=completion.id)
        with pytest.raises(errors.SDKError):
            mistral.models.update(model_id=classifier.id, description="d" * 2049)
        capture.validate_all()

        assert capture.validated == {
            ("list_models_v1_models_get", 200),
            ("retrieve_model_v1_models__model_id__get", 200),
            ("delete_model_v1_models__model_id__delete", 200),
            ("jobs_api_routes_fine_tuning_update_fine_tuned_model", 200),
            ("jobs_api_routes_fine_tuning_archive_fine_tuned_model", 200),
            ("jobs_api_routes_fine_tuning_unarchive_fine_tuned_model", 200),
            ("jobs_api_routes_fine_tuning_update_fine_tuned_model", 422),
        }
        update_types = {
            response.json()["model_type"]
            for method, _path, status, response in capture.responses
            if method == "PATCH" and status == 200
        }
        assert update_types == {"completion", "classifier"}
