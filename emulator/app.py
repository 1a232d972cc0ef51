"""The aiohttp application: the route table and :func:`create_app`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from emulator import (
    api_base_models,
    api_models,
    api_operations,
    generate,
    inspection,
    oauth,
    routes,
)
from emulator.config import EmulatorConfig
from emulator.middleware import ROUTE_OF, count_and_inject_faults, envelope_errors
from emulator.routes import Route
from emulator.state import STATE, Clock, EmulatorState

HandlerFn = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Training data of up to a few MB is posted inline (AI Studio caps uploads at 4 MB).
MAX_BODY_BYTES = 64 * 1024 * 1024

_BASE_MODEL = "/models/{model:[^/:]+}"
_MODEL = "/tunedModels/{model_id:[^/:]+}"
_OPERATION = _MODEL + "/operations/{operation_id:[^/:]+}"

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
    (
        "POST",
        "/v1beta" + _MODEL + ":generateContent",
        routes.MODELS_GENERATE,
        generate.generate_content,
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
)

INSPECTION_ROUTES: tuple[tuple[str, str, HandlerFn], ...] = (
    ("GET", "/_emulator/stats", inspection.stats),
    ("GET", "/_emulator/faults", inspection.list_faults),
    ("POST", "/_emulator/faults", inspection.add_faults),
    ("DELETE", "/_emulator/faults", inspection.clear_faults),
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
