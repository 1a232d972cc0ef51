"""Handlers of ``tunedModels/{id}/operations``: get, list, cancel (v1 only), delete (501).

Cancel is bound under ``/v1/`` only, as Google binds it: the v1 generated client
(``google-ai-generativelanguage``) posts ``/v1/{name=tunedModels/*/operations/*}:cancel``,
while ``generativelanguage_v1beta.yaml`` (googleapis) and so the v1beta client bind
CancelOperation to ``/v1beta/{name=batches/*}:cancel`` alone: nothing of Google's posts a
tuned model's cancel under ``/v1beta/``, and that path answers 404, as an unbound method does.

Cancelling is an emulator decision where the real behaviour is undocumented: the operation
ends at once with ``error.code = 1`` (CANCELLED), training stops at the step it had reached,
and the tuned model's state becomes FAILED. Cancelling an operation that is already done
changes nothing. Both answer ``{}``.
"""

from __future__ import annotations

from aiohttp import web

from emulator import paging, render, routes
from emulator.errors import ApiError
from emulator.handling import ok, owned_model, owned_operation, wants_int_enums
from emulator.oauth import authorize
from emulator.state import state_of


async def get(request: web.Request) -> web.Response:
    """``GET /v1beta|v1/tunedModels/{id}/operations/{op}``: the Operation."""
    token = authorize(request, routes.OPERATIONS_GET)
    state = state_of(request)
    info = request.match_info
    record = owned_operation(state, info["model_id"], info["operation_id"], token)
    return ok(render.operation(record, state.clock(), int_enums=wants_int_enums(request)))


async def list_operations(request: web.Request) -> web.Response:
    """``GET /v1beta/tunedModels/{id}/operations``: the model's operations, paged."""
    token = authorize(request, routes.OPERATIONS_LIST)
    state = state_of(request)
    record = owned_model(state, request.match_info["model_id"], token)
    config = state.config
    wanted = paging.page_request(request.query, config.page_size_default, config.page_size_max)
    # The create is a model's only operation: its sequence number orders it.
    chosen, next_token = paging.page([record], lambda item: item.seq, wanted)
    now_s, int_enums = state.clock(), wants_int_enums(request)
    body: dict[str, object] = {}
    if chosen:
        body["operations"] = [render.operation(item, now_s, int_enums=int_enums) for item in chosen]
    if next_token:
        body["nextPageToken"] = next_token
    return ok(body)


async def cancel(request: web.Request) -> web.Response:
    """``POST /v1/tunedModels/{id}/operations/{op}:cancel``: stop training; answers ``{}``."""
    token = authorize(request, routes.OPERATIONS_CANCEL)
    state = state_of(request)
    info = request.match_info
    record = owned_operation(state, info["model_id"], info["operation_id"], token)
    now_s = state.clock()
    if not record.progress(now_s).done:
        record.cancel_s = now_s
    return ok({})


async def delete(request: web.Request) -> web.Response:
    """``DELETE .../operations/{op}``: not supported by the service (501 UNIMPLEMENTED)."""
    authorize(request, routes.OPERATIONS_DELETE)
    raise ApiError(501, "Operation deletion is not supported for tuned model operations.")
