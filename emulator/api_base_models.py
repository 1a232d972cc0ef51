"""Handlers of ``/v1beta/models`` (and ``/v1/models``): list and get the base models.

The catalog is ``EmulatorConfig.models``; page tokens carry a model's position in it, so
they stay opaque and valid for the life of the emulator. ListModels serves 50 models per page
when no ``pageSize`` is given (``model_service.proto``), unlike ListTunedModels' 10.
"""

from __future__ import annotations

from aiohttp import web

from emulator import paging, routes
from emulator.catalog import BaseModel
from emulator.errors import base_model_not_found
from emulator.handling import ok
from emulator.oauth import authorize
from emulator.state import state_of

PAGE_SIZE_DEFAULT = 50


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1beta/models?pageSize&pageToken``: the catalog in its order, paged."""
    authorize(request, routes.BASE_MODELS_LIST)
    config = state_of(request).config
    wanted = paging.page_request(request.query, PAGE_SIZE_DEFAULT, config.page_size_max)
    positions = {model.model_id: seq for seq, model in enumerate(config.models, start=1)}
    chosen, next_token = paging.page(config.models, lambda m: positions[m.model_id], wanted)
    body: dict[str, object] = {}
    if chosen:
        body["models"] = [model.to_json() for model in chosen]
    if next_token:
        body["nextPageToken"] = next_token
    return ok(body)


async def get(request: web.Request) -> web.Response:
    """``GET /v1beta/models/{model}``: one Model; 404 NOT_FOUND if the catalog lacks it."""
    authorize(request, routes.BASE_MODELS_GET)
    model_id = request.match_info["model"]
    return ok(_find(state_of(request).config.models, model_id, request.path).to_json())


def _find(models: tuple[BaseModel, ...], model_id: str, path: str) -> BaseModel:
    for model in models:
        if model.model_id == model_id:
            return model
    version = path.split("/", 2)[1]  # "v1beta" or "v1"
    raise base_model_not_found(f"models/{model_id}", version)
