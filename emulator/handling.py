"""Helpers shared by the API handlers: JSON bodies, query parameters, model ownership."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web

from emulator.errors import (
    ApiError,
    JsonObject,
    model_not_found,
    model_permission_denied,
    operation_not_found,
)
from emulator.protojson import from_wire
from emulator.state import EmulatorState
from emulator.store import ModelRecord
from emulator.tokens import AccessToken


async def json_body(request: web.Request) -> JsonObject:
    """The request's JSON object, keys in camelCase, nulls dropped; an empty body is ``{}``."""
    body: JsonObject = from_wire(await raw_json_body(request))
    return body


async def raw_json_body(request: web.Request) -> JsonObject:
    """The request's JSON object as sent; an empty body is ``{}``."""
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body: Any = json.loads(text)
    except ValueError as exc:
        raise ApiError(400, f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.")
    return body


def query_param(request: web.Request, camel: str, snake: str) -> str | None:
    """A query parameter given under its camelCase or snake_case name."""
    return request.query.get(camel, request.query.get(snake))


def wants_int_enums(request: web.Request) -> bool:
    """Whether the caller asked for enums as numbers: ``$alt=json;enum-encoding=int``.

    Google's generated REST clients send it on every call; ``alt`` is the same system
    parameter without the ``$``.
    """
    values = request.query.getall("$alt", []) + request.query.getall("alt", [])
    return any("enum-encoding=int" in value for value in values)


def owned_model(state: EmulatorState, model_id: str, token: AccessToken) -> ModelRecord:
    """The caller's model: 404 if it does not exist, 403 if another client owns it."""
    record = state.models.get(model_id)
    if record is None:
        raise model_not_found(f"tunedModels/{model_id}")
    if record.owner != token.client_id:
        raise model_permission_denied(record.name)
    return record


def owned_operation(
    state: EmulatorState, model_id: str, operation_id: str, token: AccessToken
) -> ModelRecord:
    """The model whose create operation is ``operation_id``; 404 for any other operation."""
    record = owned_model(state, model_id, token)
    if record.operation_id != operation_id:
        raise operation_not_found(f"{record.name}/operations/{operation_id}")
    return record


def ok(body: JsonObject) -> web.Response:
    """A 200 JSON answer, written by orjson: it embeds a model's snapshots, rendered
    once (emulator.snapshot_json), as they are."""
    return web.Response(body=orjson.dumps(body), content_type="application/json", charset="utf-8")
