"""Handlers of a tuning job's results: its Model, its Endpoints, and generation on them.

A succeeded job's model is deployed on one endpoint per checkpoint. Clean-up goes in Vertex's
order: ``endpoints/{id}:undeployModel`` each, delete each endpoint, then delete the model.
Deleting a model that is still deployed, or an endpoint that still has a deployed model, is
400 FAILED_PRECONDITION. Deletes and undeploys answer an Operation that is already done.
"""

from __future__ import annotations

from aiohttp import web

from emulator import routes, vertex_render
from emulator.errors import ApiError, failed_precondition, invalid_argument
from emulator.generate_schema import VERTEX_AI
from emulator.generate_stream import answer_generate
from emulator.handling import ok, raw_json_body
from emulator.oauth import authorize
from emulator.routes import Route
from emulator.state import state_of
from emulator.vertex_access import owned_endpoint, owned_model
from emulator.vertex_store import TuningJobRecord


async def get_model(request: web.Request) -> web.Response:
    """``GET …/models/{id}`` (or ``{id}@1``): the tuned Model."""
    token = authorize(request, routes.VERTEX_MODELS_GET)
    state = state_of(request)
    record = owned_model(request, state, token, "aiplatform.models.get")
    return ok(vertex_render.model(record, state.clock()))


async def delete_model(request: web.Request) -> web.Response:
    """``DELETE …/models/{id}``: refused while the model is deployed; answers an Operation."""
    token = authorize(request, routes.VERTEX_MODELS_DELETE)
    state = state_of(request)
    record = owned_model(request, state, token, "aiplatform.models.delete")
    now_s = state.clock()
    deployed = record.deployed_endpoints(now_s)
    if deployed:
        names = ", ".join(record.endpoint_name(e) for e in deployed)
        raise failed_precondition(
            f"The model {record.model_name} is deployed or being deployed at the following "
            f"endpoints: {names}. Undeploy it from them first."
        )
    record.model_deleted = True
    return _done(record, state.vertex.fresh_id(), now_s, vertex_render.DELETE_METADATA_TYPE)


async def get_endpoint(request: web.Request) -> web.Response:
    """``GET …/endpoints/{id}``: the Endpoint with its deployed model, if any."""
    token = authorize(request, routes.ENDPOINTS_GET)
    state = state_of(request)
    record, endpoint_id = owned_endpoint(request, state, token, "aiplatform.endpoints.get")
    return ok(vertex_render.endpoint(record, endpoint_id, state.clock()))


async def delete_endpoint(request: web.Request) -> web.Response:
    """``DELETE …/endpoints/{id}``: refused while a model is deployed; answers an Operation."""
    token = authorize(request, routes.ENDPOINTS_DELETE)
    state = state_of(request)
    record, endpoint_id = owned_endpoint(request, state, token, "aiplatform.endpoints.delete")
    now_s = state.clock()
    if endpoint_id in record.deployed_endpoints(now_s):
        raise failed_precondition(
            f"Endpoint {record.endpoint_name(endpoint_id)} has deployed models. "
            "Undeploy them first."
        )
    record.deleted_endpoints.add(endpoint_id)
    return _done(record, state.vertex.fresh_id(), now_s, vertex_render.DELETE_METADATA_TYPE)


async def undeploy_model(request: web.Request) -> web.Response:
    """``POST …/endpoints/{id}:undeployModel`` with ``{deployedModelId}``: an Operation."""
    token = authorize(request, routes.ENDPOINTS_UNDEPLOY)
    state = state_of(request)
    record, endpoint_id = owned_endpoint(request, state, token, "aiplatform.endpoints.undeploy")
    body = await raw_json_body(request)
    deployed_id = body.get("deployedModelId", body.get("deployed_model_id"))
    if not isinstance(deployed_id, str) or not deployed_id:
        raise invalid_argument("deployed_model_id is required.", "deployed_model_id")
    now_s = state.clock()
    live = endpoint_id in record.deployed_endpoints(now_s)
    if not live or record.deployed_model_ids[endpoint_id] != deployed_id:
        raise ApiError(
            404,
            f"DeployedModel {deployed_id[:40]} does not exist in endpoint "
            f"{record.endpoint_name(endpoint_id)}.",
        )
    record.undeployed[endpoint_id] = now_s
    return _done(
        record,
        state.vertex.fresh_id(),
        now_s,
        vertex_render.UNDEPLOY_METADATA_TYPE,
        vertex_render.UNDEPLOY_RESPONSE_TYPE,
    )


async def generate_content(request: web.Request) -> web.StreamResponse:
    """``POST …/endpoints/{id}:generateContent``: the emulated reply of the deployed model."""
    return await _generate(request, routes.ENDPOINTS_GENERATE, stream=False)


async def stream_generate_content(request: web.Request) -> web.StreamResponse:
    """``POST …/endpoints/{id}:streamGenerateContent``: that reply in chunks."""
    return await _generate(request, routes.ENDPOINTS_STREAM_GENERATE, stream=True)


async def _generate(request: web.Request, route: Route, *, stream: bool) -> web.StreamResponse:
    token = authorize(request, route)
    state = state_of(request)
    record, endpoint_id = owned_endpoint(request, state, token, "aiplatform.endpoints.predict")
    now_s = state.clock()
    if endpoint_id not in record.deployed_endpoints(now_s):
        raise failed_precondition(
            f"Endpoint {record.endpoint_name(endpoint_id)} has no deployed model."
        )
    name = record.endpoint_name(endpoint_id)
    created = vertex_render.timestamp(now_s)
    return await answer_generate(request, VERTEX_AI, name, stream=stream, create_time=created)


def _done(
    record: TuningJobRecord,
    operation_id: str,
    now_s: float,
    metadata_type: str,
    response_type: str = vertex_render.EMPTY_TYPE,
) -> web.Response:
    body = vertex_render.done_operation(
        record.parent, operation_id, now_s, metadata_type, response_type
    )
    return ok(body)
