"""``ModelsApi``: the six operations of ../shared/reference/mistral-models-api.md
(list, retrieve, delete, update, archive, unarchive) for one API key."""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import quote

from models_admin.remote.cards import (
    ArchiveResult,
    DeleteResult,
    ModelCard,
    UpdatedModel,
    model_list_from_json,
)
from models_admin.remote.errors import InvalidModelId, ModelNotFound
from models_admin.remote.transport import Transport

logger = logging.getLogger(__name__)

MAX_MODEL_ID_LENGTH: Final = 256


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

    def list_models(
        self, *, provider: str | None = None, model: str | None = None
    ) -> tuple[ModelCard, ...]:
        """``GET /v1/models``: every model the key can see, base and fine-tuned.

        Raises ModelsApiError."""
        params = {k: v for k, v in {"provider": provider, "model": model}.items() if v is not None}
        return model_list_from_json(self._request("GET", "/v1/models", params=params))

    def retrieve_model(self, model_id: str) -> ModelCard:
        """``GET /v1/models/{id}``. Raises ModelNotFound or another ModelsApiError."""
        return ModelCard.from_json(self._request("GET", f"/v1/models/{_valid_model_id(model_id)}"))

    def delete_model(self, model_id: str) -> DeleteResult:
        """``DELETE /v1/models/{id}``. Raises ApiForbidden for base models, ModelNotFound,
        or another ModelsApiError. A retry that finds the model gone counts as deleted."""
        path = f"/v1/models/{_valid_model_id(model_id)}"
        try:
            body = self._request("DELETE", path)
        except ModelNotFound as exc:
            if exc.ambiguous:
                logger.info("Delete of %s confirmed by a retry that found it gone", model_id)
                return DeleteResult(id=model_id, deleted=True, confirmed_by_retry=True)
            raise
        return DeleteResult.from_json(body)

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
        return UpdatedModel.from_json(self._request("PATCH", path, json=payload))

    def archive_model(self, model_id: str) -> ArchiveResult:
        """``POST /v1/fine_tuning/models/{id}/archive``. Raises ModelsApiError."""
        return self._archive("POST", model_id, default=True)

    def unarchive_model(self, model_id: str) -> ArchiveResult:
        """``DELETE /v1/fine_tuning/models/{id}/archive``. Raises ModelsApiError."""
        return self._archive("DELETE", model_id, default=False)

    def _archive(self, method: str, model_id: str, *, default: bool) -> ArchiveResult:
        body = self._request(method, f"/v1/fine_tuning/models/{_valid_model_id(model_id)}/archive")
        return ArchiveResult.from_json(body, default=default)
