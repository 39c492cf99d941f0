"""``ModelsApi``: the six operations of ../shared/reference/mistral-models-api.md
(list, retrieve, delete, update, archive, unarchive) for one API key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, TypeVar
from urllib.parse import quote

from models_admin.remote.cards import (
    ArchiveResult,
    DeleteResult,
    ModelCard,
    ModelList,
    UpdatedModel,
)
from models_admin.remote.entries import ListedEntries, read_entries
from models_admin.remote.errors import InvalidModelId, MalformedResponse, ModelNotFound
from models_admin.remote.transport import Transport
from models_admin.remote.wire import read_model_list

logger = logging.getLogger(__name__)
R = TypeVar("R")

MAX_MODEL_ID_LENGTH: Final = 256
CHANGE_UNREADABLE: Final = (
    "Mistral accepted the change, but the dashboard could not read its answer: the "
    "change may have happened. Reload the model to check before trying again."
)


class _Unset:
    """Marker for "leave this field out of the PATCH body"."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


def _valid_model_id(model_id: str) -> str:
    """Percent-encode a model id for one path segment. ``:`` stays (ids are full of it);
    ``/``, ``?``, ``#``, ``%`` and the rest are encoded; dot segments are refused."""
    if (
        not model_id
        or model_id in {".", ".."}
        or len(model_id) > MAX_MODEL_ID_LENGTH
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in model_id)
    ):
        raise InvalidModelId()
    return quote(model_id, safe=":@-._~")


class ModelsApi(Transport):
    """The six operations, for one API key. Cheap to create: the connections are pooled."""

    def list_models(self, *, provider: str | None = None, model: str | None = None) -> ModelList:
        """``GET /v1/models``: every model the key can see, base and fine-tuned. Cards
        that break the contract are kept, flagged (``card.problems``); entries without
        a usable id are left out and counted in ``ModelList.problems``.

        Raises ModelsApiError."""
        params = {k: v for k, v in {"provider": provider, "model": model}.items() if v is not None}
        response = self._request("GET", "/v1/models", params=params, raw=True)
        return read_model_list(response.content, status=response.status_code)

    def list_model_entries(self) -> ListedEntries:
        """``GET /v1/models`` as the inventory sync reads it: of each entry only the
        fields it compares (see ``entries``), the entry as sent on demand, for the cards
        of the models that changed.

        Raises ModelsApiError (MalformedResponse when the body is not {"data": [...]})."""
        response = self._request("GET", "/v1/models", raw=True)
        return read_entries(response.content, status=response.status_code)

    def retrieve_model(self, model_id: str) -> ModelCard:
        """``GET /v1/models/{id}``; a card that breaks the contract comes back flagged
        (``card.problems``). Raises ModelNotFound or another ModelsApiError."""
        body = self._request("GET", f"/v1/models/{_valid_model_id(model_id)}")
        return ModelCard.from_json(body, model_id=model_id)

    def delete_model(self, model_id: str) -> DeleteResult:
        """``DELETE /v1/models/{id}``. Raises ApiForbidden for base models, ModelNotFound,
        or another ModelsApiError. A retry that finds the model gone counts as deleted."""
        path = f"/v1/models/{_valid_model_id(model_id)}"
        try:
            return self._change("DELETE", path, DeleteResult.from_json)
        except ModelNotFound as exc:
            if exc.ambiguous:
                logger.info("Delete of %s confirmed by a retry that found it gone", model_id)
                return DeleteResult(id=model_id, deleted=True, confirmed_by_retry=True)
            raise

    def update_model(
        self,
        model_id: str,
        *,
        name: str | None | _Unset = UNSET,
        description: str | None | _Unset = UNSET,
    ) -> UpdatedModel:
        """``PATCH /v1/fine_tuning/models/{id}`` with the given fields (UNSET leaves one out).

        Raises ApiRejected (with field errors) on 422, or another ModelsApiError."""
        payload = {
            key: value
            for key, value in {"name": name, "description": description}.items()
            if not isinstance(value, _Unset)
        }
        path = f"/v1/fine_tuning/models/{_valid_model_id(model_id)}"
        return self._change(
            "PATCH", path, lambda body: UpdatedModel.from_json(body, model_id=model_id), payload
        )

    def archive_model(self, model_id: str) -> ArchiveResult:
        """``POST /v1/fine_tuning/models/{id}/archive``. Raises ModelsApiError."""
        return self._archive("POST", model_id, default=True)

    def unarchive_model(self, model_id: str) -> ArchiveResult:
        """``DELETE /v1/fine_tuning/models/{id}/archive``. Raises ModelsApiError."""
        return self._archive("DELETE", model_id, default=False)

    def _archive(self, method: str, model_id: str, *, default: bool) -> ArchiveResult:
        return self._change(
            method,
            f"/v1/fine_tuning/models/{_valid_model_id(model_id)}/archive",
            lambda body: ArchiveResult.from_json(body, model_id=model_id, default=default),
        )

    def _change(
        self, method: str, path: str, parse: Callable[[Any], R], payload: object = None
    ) -> R:
        """A change and the reading of its answer. Mistral said 2xx, so an answer that
        cannot be read means the change probably happened: MalformedResponse is raised
        ``ambiguous``, with a message that says so."""
        try:
            return parse(self._request(method, path, json=payload))
        except MalformedResponse as exc:
            exc.ambiguous = True
            exc.message = CHANGE_UNREADABLE
            exc.args = (exc.message,)
            raise
