"""Gemini API handlers: ``tunedModels/{id}:generateContent`` and ``:streamGenerateContent``.

Only an ``ACTIVE`` tuned model generates, and only for its owner; the answer is the made-up
model's (``emulator.generate``).
"""

from __future__ import annotations

from aiohttp import web

from emulator import render, routes
from emulator.errors import failed_precondition
from emulator.generate_schema import GEMINI_API
from emulator.generate_stream import answer_generate
from emulator.handling import owned_model
from emulator.oauth import authorize
from emulator.routes import Route
from emulator.state import state_of


async def generate_content(request: web.Request) -> web.StreamResponse:
    """``POST /v1beta/tunedModels/{id}:generateContent``: one whole answer."""
    return await _generate(request, routes.MODELS_GENERATE, stream=False)


async def stream_generate_content(request: web.Request) -> web.StreamResponse:
    """``POST /v1beta/tunedModels/{id}:streamGenerateContent``: the answer in chunks."""
    return await _generate(request, routes.MODELS_STREAM_GENERATE, stream=True)


async def _generate(request: web.Request, route: Route, *, stream: bool) -> web.StreamResponse:
    token = authorize(request, route)
    state = state_of(request)
    record = owned_model(state, request.match_info["model_id"], token)
    model_state = render.model_state(record, state.clock())
    if model_state != "ACTIVE":
        raise failed_precondition(
            f"Tuned model {record.name} is not ready for generation: its state is {model_state}."
        )
    return await answer_generate(request, GEMINI_API, record.name, stream=stream)
