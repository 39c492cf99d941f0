"""Client for Mistral's model-management API. The only package that imports httpx.

It speaks the six operations of ../shared/reference/mistral-models-api.md, turns
JSON into frozen dataclasses and every failure into one exception tree (see
``errors``). Modules, each one concern:

    errors      the exception tree: ModelsApiError and its subclasses
    reading     _Reader (typed access to JSON), error bodies, Retry-After
    cards       typed immutable results: ModelCard and friends, ModelList, Capabilities;
                read tolerantly (a card that breaks the contract is kept, flagged in
                ``card.problems``), answers to changes read only what is used
    transport   pooled httpx client (egress proxy and CA bundle from the environment,
                or MISTRAL_API_PROXY), RetryPolicy, RateGate, the request/retry loop
                (Cloudflare's 520-524 retried, and ambiguous for a change)
    wire        the list call read in one pass (msgspec structs), the odd cards tolerantly
    entries     the list call as the inventory sync reads it: only the compared fields
    client      ModelsApi: the six operations

Import the package, not the modules: ``from models_admin import remote; remote.ModelsApi``.
"""

from __future__ import annotations

from models_admin.remote.cards import (
    KNOWN_CAPABILITIES,
    ArchiveResult,
    BaseModelCard,
    Capabilities,
    ClassifierTarget,
    DeleteResult,
    FineTunedModelCard,
    ModelCard,
    ModelList,
    UnknownModelCard,
    UpdatedModel,
)
from models_admin.remote.client import UNSET, ModelsApi
from models_admin.remote.entries import ListedEntries
from models_admin.remote.errors import (
    ApiAuthFailed,
    ApiForbidden,
    ApiRateLimited,
    ApiRejected,
    ApiTimeout,
    ApiUnavailable,
    InvalidModelId,
    MalformedResponse,
    ModelNotFound,
    ModelsApiError,
)
from models_admin.remote.reading import CLOUDFLARE_STATUSES
from models_admin.remote.transport import (
    AMBIGUOUS_STATUSES,
    PROXY_ENVIRONMENT,
    RETRY_STATUSES,
    USER_AGENT,
    RateGate,
    RetryPolicy,
    http_pool,
)
from models_admin.remote.wire import read_model_list

__all__ = [
    "AMBIGUOUS_STATUSES",
    "CLOUDFLARE_STATUSES",
    "KNOWN_CAPABILITIES",
    "RETRY_STATUSES",
    "UNSET",
    "USER_AGENT",
    "ApiAuthFailed",
    "ApiForbidden",
    "ApiRateLimited",
    "ApiRejected",
    "ApiTimeout",
    "ApiUnavailable",
    "ArchiveResult",
    "BaseModelCard",
    "Capabilities",
    "ClassifierTarget",
    "DeleteResult",
    "FineTunedModelCard",
    "PROXY_ENVIRONMENT",
    "InvalidModelId",
    "ListedEntries",
    "MalformedResponse",
    "ModelCard",
    "ModelList",
    "ModelNotFound",
    "ModelsApi",
    "ModelsApiError",
    "RateGate",
    "RetryPolicy",
    "UnknownModelCard",
    "UpdatedModel",
    "http_pool",
    "read_model_list",
]
