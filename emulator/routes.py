"""Stable route names, the RPC each stands for, and the OAuth scopes each accepts.

Route names key the request counters of ``GET /_emulator/stats`` and the fault rules of
``POST /_emulator/faults``; tests depend on them, so they do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

_AUTH = "https://www.googleapis.com/auth/"
SCOPE_TUNING = _AUTH + "generative-language.tuning"
SCOPE_GENERATIVE_LANGUAGE = _AUTH + "generative-language"
SCOPE_TUNING_READONLY = _AUTH + "generative-language.tuning.readonly"
SCOPE_RETRIEVER = _AUTH + "generative-language.retriever"
SCOPE_RETRIEVER_READONLY = _AUTH + "generative-language.retriever.readonly"
SCOPE_CLOUD_PLATFORM = _AUTH + "cloud-platform"

CREATE_SCOPES = (SCOPE_TUNING, SCOPE_CLOUD_PLATFORM)
WRITE_SCOPES = (SCOPE_TUNING, SCOPE_GENERATIVE_LANGUAGE, SCOPE_CLOUD_PLATFORM)
READ_SCOPES = (
    SCOPE_GENERATIVE_LANGUAGE,
    SCOPE_TUNING,
    SCOPE_TUNING_READONLY,
    SCOPE_RETRIEVER,
    SCOPE_RETRIEVER_READONLY,
    SCOPE_CLOUD_PLATFORM,
)

_MODEL_SERVICE = "google.ai.generativelanguage.v1beta.ModelService."
_OPERATIONS = "google.longrunning.Operations."


@dataclass(frozen=True)
class Route:
    """One API method.

    Attributes:
        name: the stable route name (``tunedModels.create``).
        rpc_method: the fully qualified RPC, reported in ErrorInfo metadata.
        scopes: OAuth scopes of which the access token needs at least one.
    """

    name: str
    rpc_method: str
    scopes: tuple[str, ...]


OAUTH_TOKEN = Route("oauth.token", "oauth2.token", ())
MODELS_CREATE = Route("tunedModels.create", _MODEL_SERVICE + "CreateTunedModel", CREATE_SCOPES)
MODELS_GET = Route("tunedModels.get", _MODEL_SERVICE + "GetTunedModel", READ_SCOPES)
MODELS_LIST = Route("tunedModels.list", _MODEL_SERVICE + "ListTunedModels", READ_SCOPES)
MODELS_PATCH = Route("tunedModels.patch", _MODEL_SERVICE + "UpdateTunedModel", WRITE_SCOPES)
MODELS_DELETE = Route("tunedModels.delete", _MODEL_SERVICE + "DeleteTunedModel", WRITE_SCOPES)
MODELS_GENERATE = Route(
    "tunedModels.generateContent",
    "google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent",
    READ_SCOPES,
)
BASE_MODELS_GET = Route("models.get", _MODEL_SERVICE + "GetModel", READ_SCOPES)
BASE_MODELS_LIST = Route("models.list", _MODEL_SERVICE + "ListModels", READ_SCOPES)
OPERATIONS_GET = Route("operations.get", _OPERATIONS + "GetOperation", READ_SCOPES)
OPERATIONS_LIST = Route("operations.list", _OPERATIONS + "ListOperations", READ_SCOPES)
OPERATIONS_CANCEL = Route("operations.cancel", _OPERATIONS + "CancelOperation", WRITE_SCOPES)
OPERATIONS_DELETE = Route("operations.delete", _OPERATIONS + "DeleteOperation", WRITE_SCOPES)

ALL_ROUTES = (
    OAUTH_TOKEN,
    MODELS_CREATE,
    MODELS_GET,
    MODELS_LIST,
    MODELS_PATCH,
    MODELS_DELETE,
    MODELS_GENERATE,
    BASE_MODELS_GET,
    BASE_MODELS_LIST,
    OPERATIONS_GET,
    OPERATIONS_LIST,
    OPERATIONS_CANCEL,
    OPERATIONS_DELETE,
)
ROUTE_NAMES = frozenset(route.name for route in ALL_ROUTES)
