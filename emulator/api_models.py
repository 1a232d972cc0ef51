"""Handlers of ``/v1beta/tunedModels``: create, get, list, patch, delete."""

from __future__ import annotations

from aiohttp import web

from emulator import paging, render, routes
from emulator.handling import json_body, ok, owned_model, query_param, wants_int_enums
from emulator.middleware import forced_stop
from emulator.oauth import authorize
from emulator.state import EmulatorState, state_of
from emulator.store import ModelRecord
from emulator.validation import parse_create, parse_update_mask, patched_fields

_FILTER_NOOPS = frozenset({"owner:me", "readers:me", "writers:me"})


async def create(request: web.Request) -> web.Response:
    """``POST /v1beta/tunedModels?tunedModelId=ID``: start tuning; answer the Operation."""
    token = authorize(request, routes.MODELS_CREATE)
    state = state_of(request)
    model_id = query_param(request, "tunedModelId", "tuned_model_id") or None
    spec = parse_create(await json_body(request), model_id)
    now_s = state.clock()
    config = state.config
    record = state.models.create(
        spec,
        token.client_id,
        now_s,
        config.steps_per_second,
        forced_stop(),
        head_start_steps=config.head_start_steps,
    )
    return ok(render.operation(record, now_s, int_enums=wants_int_enums(request)))


async def get(request: web.Request) -> web.Response:
    """``GET /v1beta/tunedModels/{id}``: the TunedModel."""
    token = authorize(request, routes.MODELS_GET)
    state = state_of(request)
    record = owned_model(state, request.match_info["model_id"], token)
    return ok(render.tuned_model(record, state.clock(), int_enums=wants_int_enums(request)))


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1beta/tunedModels``: the caller's models, in creation order, paged."""
    token = authorize(request, routes.MODELS_LIST)
    state = state_of(request)
    config = state.config
    wanted = paging.page_request(request.query, config.page_size_default, config.page_size_max)
    matching = _filtered(state, token.client_id, request.query.get("filter", ""))
    chosen, next_token = paging.page(matching, lambda record: record.seq, wanted)
    now_s, int_enums = state.clock(), wants_int_enums(request)
    body: dict[str, object] = {}
    if chosen:
        body["tunedModels"] = [
            render.tuned_model(record, now_s, int_enums=int_enums) for record in chosen
        ]
    if next_token:
        body["nextPageToken"] = next_token
    return ok(body)


async def patch(request: web.Request) -> web.Response:
    """``PATCH /v1beta/tunedModels/{id}?updateMask=a,b``: update mutable fields."""
    token = authorize(request, routes.MODELS_PATCH)
    state = state_of(request)
    record = owned_model(state, request.match_info["model_id"], token)
    mask = parse_update_mask(query_param(request, "updateMask", "update_mask"))
    record.fields = patched_fields(record.fields, await json_body(request), mask)
    record.update_s = state.clock()
    return ok(render.tuned_model(record, record.update_s, int_enums=wants_int_enums(request)))


async def delete(request: web.Request) -> web.Response:
    """``DELETE /v1beta/tunedModels/{id}``: forget the model; answers ``{}``."""
    token = authorize(request, routes.MODELS_DELETE)
    state = state_of(request)
    record = owned_model(state, request.match_info["model_id"], token)
    state.models.delete(record.model_id)
    return ok({})


def _filtered(state: EmulatorState, owner: str, filter_text: str) -> list[ModelRecord]:
    """The owner's models matching a list filter.

    ``owner:me``, ``readers:me`` and ``writers:me`` hold for every listed model (the list is
    already the caller's own); ``readers:everyone`` matches nothing (the emulator does not
    share models). Other words form one case-insensitive substring of displayName or
    description.
    """
    words = filter_text.split()
    if "readers:everyone" in words:
        return []
    needle = " ".join(w for w in words if w not in _FILTER_NOOPS).lower()
    return [r for r in state.models.owned_by(owner) if _matches(r, needle)]


def _matches(record: ModelRecord, needle: str) -> bool:
    fields = record.fields
    return needle in fields.display_name.lower() or needle in fields.description.lower()
