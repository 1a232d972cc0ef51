"""Stable route names, the RPC each stands for, and the OAuth scopes each accepts.

Route names key the request counters of ``GET /_emulator/stats`` and the fault rules of
``POST /_emulator/faults``; tests depend on them, so they do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.errors import SERVICE as GEMINI_SERVICE

_AUTH = "https://www.googleapis.com/auth/"
SCOPE_TUNING = _AUTH + "generative-language.tuning"
SCOPE_GENERATIVE_LANGUAGE = _AUTH + "generative-language"
SCOPE_TUNING_READONLY = _AUTH + "generative-language.tuning.readonly"
SCOPE_RETRIEVER = _AUTH + "generative-language.retriever"
SCOPE_RETRIEVER_READONLY = _AUTH + "generative-language.retriever.readonly"
SCOPE_CLOUD_PLATFORM = _AUTH + "cloud-platform"
SCOPE_STORAGE_READ_ONLY = _AUTH + "devstorage.read_only"
SCOPE_STORAGE_READ_WRITE = _AUTH + "devstorage.read_write"
SCOPE_STORAGE_FULL_CONTROL = _AUTH + "devstorage.full_control"

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
STORAGE_WRITE_SCOPES = (
    SCOPE_CLOUD_PLATFORM,
    SCOPE_STORAGE_READ_WRITE,
    SCOPE_STORAGE_FULL_CONTROL,
)
STORAGE_READ_SCOPES = (*STORAGE_WRITE_SCOPES, SCOPE_STORAGE_READ_ONLY)

SCOPE_CLOUD_PLATFORM_READONLY = _AUTH + "cloud-platform.read-only"
VERTEX_WRITE_SCOPES = (SCOPE_CLOUD_PLATFORM,)
VERTEX_READ_SCOPES = (SCOPE_CLOUD_PLATFORM, SCOPE_CLOUD_PLATFORM_READONLY)

VERTEX_SERVICE = "aiplatform.googleapis.com"

_MODEL_SERVICE = "google.ai.generativelanguage.v1beta.ModelService."
_OPERATIONS = "google.longrunning.Operations."


@dataclass(frozen=True)
class Route:
    """One API method.

    Attributes:
        name: the stable route name (``tunedModels.create``).
        rpc_method: the fully qualified RPC, reported in ErrorInfo metadata.
        scopes: OAuth scopes of which the access token needs at least one.
        json_api_errors: errors are answered in the older JSON API envelope
            (``{"error": {code, message, errors: [{message, domain, reason}]}}``), as Cloud
            Storage answers them, rather than as a ``google.rpc.Status``.
        service: the API's service name, reported in ErrorInfo metadata and quota metrics.
    """

    name: str
    rpc_method: str
    scopes: tuple[str, ...]
    json_api_errors: bool = False
    service: str = GEMINI_SERVICE


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
MODELS_STREAM_GENERATE = Route(
    "tunedModels.streamGenerateContent",
    "google.ai.generativelanguage.v1beta.GenerativeService.StreamGenerateContent",
    READ_SCOPES,
)
BASE_MODELS_GET = Route("models.get", _MODEL_SERVICE + "GetModel", READ_SCOPES)
BASE_MODELS_LIST = Route("models.list", _MODEL_SERVICE + "ListModels", READ_SCOPES)
OPERATIONS_GET = Route("operations.get", _OPERATIONS + "GetOperation", READ_SCOPES)
OPERATIONS_LIST = Route("operations.list", _OPERATIONS + "ListOperations", READ_SCOPES)
OPERATIONS_CANCEL = Route("operations.cancel", _OPERATIONS + "CancelOperation", WRITE_SCOPES)
OPERATIONS_DELETE = Route("operations.delete", _OPERATIONS + "DeleteOperation", WRITE_SCOPES)
# Cloud Storage JSON API methods; each resumable-upload request (start, chunk, status query)
# is a request of ``storage.objects.insert``.
STORAGE_SERVICE = "storage.googleapis.com"


def _storage(method: str, scopes: tuple[str, ...]) -> Route:
    return Route(method, method, scopes, json_api_errors=True, service=STORAGE_SERVICE)


STORAGE_INSERT = _storage("storage.objects.insert", STORAGE_WRITE_SCOPES)
STORAGE_GET = _storage("storage.objects.get", STORAGE_READ_SCOPES)
STORAGE_LIST = _storage("storage.objects.list", STORAGE_READ_SCOPES)
STORAGE_DELETE = _storage("storage.objects.delete", STORAGE_WRITE_SCOPES)
STORAGE_REWRITE = _storage("storage.objects.rewrite", STORAGE_WRITE_SCOPES)
STORAGE_COPY = _storage("storage.objects.copy", STORAGE_WRITE_SCOPES)

_VERTEX = "google.cloud.aiplatform.v1."


def _vertex(name: str, rpc_method: str, scopes: tuple[str, ...]) -> Route:
    return Route(name, _VERTEX + rpc_method, scopes, service=VERTEX_SERVICE)


# Vertex AI (``/v1/projects/...`` and ``/v1beta1/projects/...``); ``vertexModels`` is named
# apart from the Gemini API's base-model ``models`` routes.
TUNING_JOBS_CREATE = _vertex(
    "tuningJobs.create", "GenAiTuningService.CreateTuningJob", VERTEX_WRITE_SCOPES
)
TUNING_JOBS_GET = _vertex("tuningJobs.get", "GenAiTuningService.GetTuningJob", VERTEX_READ_SCOPES)
TUNING_JOBS_LIST = _vertex(
    "tuningJobs.list", "GenAiTuningService.ListTuningJobs", VERTEX_READ_SCOPES
)
TUNING_JOBS_CANCEL = _vertex(
    "tuningJobs.cancel", "GenAiTuningService.CancelTuningJob", VERTEX_WRITE_SCOPES
)
VERTEX_MODELS_GET = _vertex("vertexModels.get", "ModelService.GetModel", VERTEX_READ_SCOPES)
VERTEX_MODELS_DELETE = _vertex(
    "vertexModels.delete", "ModelService.DeleteModel", VERTEX_WRITE_SCOPES
)
ENDPOINTS_GET = _vertex("endpoints.get", "EndpointService.GetEndpoint", VERTEX_READ_SCOPES)
ENDPOINTS_DELETE = _vertex(
    "endpoints.delete", "EndpointService.DeleteEndpoint", VERTEX_WRITE_SCOPES
)
ENDPOINTS_UNDEPLOY = _vertex(
    "endpoints.undeployModel", "EndpointService.UndeployModel", VERTEX_WRITE_SCOPES
)
ENDPOINTS_GENERATE = _vertex(
    "endpoints.generateContent", "PredictionService.GenerateContent", VERTEX_READ_SCOPES
)
ENDPOINTS_STREAM_GENERATE = _vertex(
    "endpoints.streamGenerateContent",
    "PredictionService.StreamGenerateContent",
    VERTEX_READ_SCOPES,
)
VERTEX_ROUTES = (
    TUNING_JOBS_CREATE,
    TUNING_JOBS_GET,
    TUNING_JOBS_LIST,
    TUNING_JOBS_CANCEL,
    VERTEX_MODELS_GET,
    VERTEX_MODELS_DELETE,
    ENDPOINTS_GET,
    ENDPOINTS_DELETE,
    ENDPOINTS_UNDEPLOY,
    ENDPOINTS_GENERATE,
    ENDPOINTS_STREAM_GENERATE,
)

# The IAM Credentials API (``emulator.iam``): service-account impersonation.
IAM_SERVICE = "iamcredentials.googleapis.com"
SCOPE_IAM = _AUTH + "iam"
IAM_GENERATE_ACCESS_TOKEN = Route(
    "serviceAccounts.generateAccessToken",
    "google.iam.credentials.v1.IAMCredentials.GenerateAccessToken",
    (SCOPE_CLOUD_PLATFORM, SCOPE_IAM),
    service=IAM_SERVICE,
)

ALL_ROUTES = (
    OAUTH_TOKEN,
    MODELS_CREATE,
    MODELS_GET,
    MODELS_LIST,
    MODELS_PATCH,
    MODELS_DELETE,
    MODELS_GENERATE,
    MODELS_STREAM_GENERATE,
    BASE_MODELS_GET,
    BASE_MODELS_LIST,
    OPERATIONS_GET,
    OPERATIONS_LIST,
    OPERATIONS_CANCEL,
    OPERATIONS_DELETE,
    STORAGE_INSERT,
    STORAGE_GET,
    STORAGE_LIST,
    STORAGE_DELETE,
    STORAGE_REWRITE,
    STORAGE_COPY,
    *VERTEX_ROUTES,
    IAM_GENERATE_ACCESS_TOKEN,
)
ROUTE_NAMES = frozenset(route.name for route in ALL_ROUTES)
# The routes that answer a stream of chunks (the stream fault knobs apply to them only).
STREAM_ROUTES = (MODELS_STREAM_GENERATE, ENDPOINTS_STREAM_GENERATE)
