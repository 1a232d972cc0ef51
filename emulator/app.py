"""The aiohttp application: the route table and :func:`create_app`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from emulator import (
    api_base_models,
    api_models,
    api_operations,
    generate_api,
    iam,
    inspection,
    oauth,
    routes,
    storage_api,
    vertex_inspection,
    vertex_jobs,
    vertex_resources,
)
from emulator.config import EmulatorConfig
from emulator.middleware import ROUTE_OF, count_and_inject_faults, envelope_errors
from emulator.routes import Route
from emulator.state import STATE, Clock, EmulatorState

HandlerFn = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Training data of up to a few MB is posted inline (AI Studio caps uploads at 4 MB).
# Cloud Storage uploads are streamed to disk and not bound by it (``emulator.storage_streams``).
MAX_BODY_BYTES = 64 * 1024 * 1024

_BASE_MODEL = "/models/{model:[^/:]+}"
_MODEL = "/tunedModels/{model_id:[^/:]+}"
_OPERATION = _MODEL + "/operations/{operation_id:[^/:]+}"
_GENERATE = _MODEL + ":generateContent"
_STREAM_GENERATE = _MODEL + ":streamGenerateContent"
# Vertex AI: one aiohttp route serves both API versions (``match_info["version"]``).
_VERTEX = "/{version:v1|v1beta1}/projects/{project:[^/:]+}/locations/{location:[^/:]+}"
_JOBS = _VERTEX + "/tuningJobs"
_JOB = _JOBS + "/{job_id:[^/:]+}"
_VERTEX_MODEL = _VERTEX + "/models/{model_id:[^/:]+}"
_ENDPOINT = _VERTEX + "/endpoints/{endpoint_id:[^/:]+}"
_OBJECTS = "/storage/v1/b/{bucket}/o"
_OBJECT = _OBJECTS + "/{object:.+}"  # the name is URL-encoded; aiohttp decodes %2F after matching
_DESTINATION = "/b/{destinationBucket}/o/{destinationObject:.+}"
_SERVICE_ACCOUNT = "/v1/projects/{project:[^/:]+}/serviceAccounts/{account:[^/:]+}"

API_ROUTES: tuple[tuple[str, str, Route, HandlerFn], ...] = (
    ("POST", "/token", routes.OAUTH_TOKEN, oauth.token_endpoint),
    # ModelService.ListModels and GetModel are bound under both versions (googleapis).
    ("GET", "/v1beta/models", routes.BASE_MODELS_LIST, api_base_models.list_models),
    ("GET", "/v1/models", routes.BASE_MODELS_LIST, api_base_models.list_models),
    ("GET", "/v1beta" + _BASE_MODEL, routes.BASE_MODELS_GET, api_base_models.get),
    ("GET", "/v1" + _BASE_MODEL, routes.BASE_MODELS_GET, api_base_models.get),
    ("POST", "/v1beta/tunedModels", routes.MODELS_CREATE, api_models.create),
    ("GET", "/v1beta/tunedModels", routes.MODELS_LIST, api_models.list_models),
    ("GET", "/v1beta" + _MODEL, routes.MODELS_GET, api_models.get),
    ("PATCH", "/v1beta" + _MODEL, routes.MODELS_PATCH, api_models.patch),
    ("DELETE", "/v1beta" + _MODEL, routes.MODELS_DELETE, api_models.delete),
    # GenerativeService binds generation on tuned models under both versions (googleapis).
    ("POST", "/v1beta" + _GENERATE, routes.MODELS_GENERATE, generate_api.generate_content),
    ("POST", "/v1" + _GENERATE, routes.MODELS_GENERATE, generate_api.generate_content),
    (
        "POST",
        "/v1beta" + _STREAM_GENERATE,
        routes.MODELS_STREAM_GENERATE,
        generate_api.stream_generate_content,
    ),
    (
        "POST",
        "/v1" + _STREAM_GENERATE,
        routes.MODELS_STREAM_GENERATE,
        generate_api.stream_generate_content,
    ),
    (
        "GET",
        "/v1beta" + _MODEL + "/operations",
        routes.OPERATIONS_LIST,
        api_operations.list_operations,
    ),
    ("GET", "/v1beta" + _OPERATION, routes.OPERATIONS_GET, api_operations.get),
    ("GET", "/v1" + _OPERATION, routes.OPERATIONS_GET, api_operations.get),
    ("DELETE", "/v1beta" + _OPERATION, routes.OPERATIONS_DELETE, api_operations.delete),
    ("DELETE", "/v1" + _OPERATION, routes.OPERATIONS_DELETE, api_operations.delete),
    ("POST", "/v1" + _OPERATION + ":cancel", routes.OPERATIONS_CANCEL, api_operations.cancel),
    ("POST", "/upload" + _OBJECTS, routes.STORAGE_INSERT, storage_api.insert),
    ("PUT", "/upload" + _OBJECTS, routes.STORAGE_INSERT, storage_api.put_chunk),
    ("DELETE", "/upload" + _OBJECTS, routes.STORAGE_INSERT, storage_api.cancel_upload),
    ("GET", _OBJECTS, routes.STORAGE_LIST, storage_api.list_objects),
    ("GET", _OBJECT, routes.STORAGE_GET, storage_api.get_object),
    ("GET", "/download" + _OBJECT, routes.STORAGE_GET, storage_api.download),
    ("DELETE", _OBJECT, routes.STORAGE_DELETE, storage_api.delete),
    ("POST", _OBJECT + "/rewriteTo" + _DESTINATION, routes.STORAGE_REWRITE, storage_api.rewrite),
    ("POST", _OBJECT + "/copyTo" + _DESTINATION, routes.STORAGE_COPY, storage_api.copy),
    ("POST", _JOBS, routes.TUNING_JOBS_CREATE, vertex_jobs.create),
    ("GET", _JOBS, routes.TUNING_JOBS_LIST, vertex_jobs.list_jobs),
    ("GET", _JOB, routes.TUNING_JOBS_GET, vertex_jobs.get),
    ("POST", _JOB + ":cancel", routes.TUNING_JOBS_CANCEL, vertex_jobs.cancel),
    ("GET", _VERTEX_MODEL, routes.VERTEX_MODELS_GET, vertex_resources.get_model),
    ("DELETE", _VERTEX_MODEL, routes.VERTEX_MODELS_DELETE, vertex_resources.delete_model),
    ("GET", _ENDPOINT, routes.ENDPOINTS_GET, vertex_resources.get_endpoint),
    ("DELETE", _ENDPOINT, routes.ENDPOINTS_DELETE, vertex_resources.delete_endpoint),
    (
        "POST",
        _ENDPOINT + ":undeployModel",
        routes.ENDPOINTS_UNDEPLOY,
        vertex_resources.undeploy_model,
    ),
    (
        "POST",
        _ENDPOINT + ":generateContent",
        routes.ENDPOINTS_GENERATE,
        vertex_resources.generate_content,
    ),
    (
        "POST",
        _ENDPOINT + ":streamGenerateContent",
        routes.ENDPOINTS_STREAM_GENERATE,
        vertex_resources.stream_generate_content,
    ),
    (
        "POST",
        _SERVICE_ACCOUNT + ":generateAccessToken",
        routes.IAM_GENERATE_ACCESS_TOKEN,
        iam.generate_access_token,
    ),
)

INSPECTION_ROUTES: tuple[tuple[str, str, HandlerFn], ...] = (
    ("GET", "/_emulator/stats", inspection.stats),
    ("GET", "/_emulator/faults", inspection.list_faults),
    ("POST", "/_emulator/faults", inspection.add_faults),
    ("DELETE", "/_emulator/faults", inspection.clear_faults),
    ("GET", "/_emulator/streams", inspection.list_streams),
    ("DELETE", "/_emulator/streams", inspection.clear_streams),
    ("GET", "/_emulator/storage/objects", storage_api.inspect_objects),
    ("GET", "/_emulator/storage/uploads", storage_api.inspect_uploads),
    ("GET", "/_emulator/vertex/tuningJobs", vertex_inspection.list_all_jobs),
)


def create_app(config: EmulatorConfig, clock: Clock = time.time) -> web.Application:
    """A fresh emulator application (its own models, tokens and faults).

    Args:
        config: the emulator's settings.
        clock: returns the current time in epoch seconds; tests pass a fake one to drive
            training progress and token expiry deterministically.
    """
    app = web.Application(
        middlewares=[envelope_errors, count_and_inject_faults], client_max_size=MAX_BODY_BYTES
    )
    app[STATE] = EmulatorState.create(config, clock)
    app[ROUTE_OF] = {}
    for method, path, route, handler in API_ROUTES:
        app[ROUTE_OF][app.router.add_route(method, path, handler)] = route
    for method, path, handler in INSPECTION_ROUTES:
        app.router.add_route(method, path, handler)
    app.on_cleanup.append(_remove_objects)
    return app


async def _remove_objects(app: web.Application) -> None:
    app[STATE].objects.close()
