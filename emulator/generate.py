"""Emulated ``generateContent`` for ACTIVE tuned models: a deterministic made-up reply.

No model runs: the reply says it is emulated and echoes the start of the prompt, so tests can
recognise it. Token counts are word counts, which is plausible but not what Gemini counts.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator import render, routes
from emulator.errors import JsonObject, failed_precondition, invalid_argument
from emulator.handling import json_body, ok, owned_model, wants_int_enums
from emulator.oauth import authorize
from emulator.state import state_of

PROMPT_ECHO_MAX_CHARS = 80
FINISH_REASON_STOP = "STOP"
FINISH_REASON_STOP_NUMBER = 1  # Candidate.FinishReason.STOP


async def generate_content(request: web.Request) -> web.Response:
    """``POST /v1beta/tunedModels/{id}:generateContent``."""
    token = authorize(request, routes.MODELS_GENERATE)
    state = state_of(request)
    record = owned_model(state, request.match_info["model_id"], token)
    model_state = render.model_state(record, state.clock())
    if model_state != "ACTIVE":
        raise failed_precondition(
            f"Tuned model {record.name} is not ready for generation: its state is {model_state}."
        )
    prompt = prompt_text(await json_body(request))
    return ok(response_for(record.name, prompt, int_enums=wants_int_enums(request)))


def prompt_text(body: JsonObject) -> str:
    """All text parts of the request's contents, joined by spaces; 400 if there are none."""
    contents: Any = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid_argument("contents is not specified.", "contents")
    texts = [
        str(part.get("text", ""))
        for content in contents
        if isinstance(content, dict)
        for part in content.get("parts", [])
        if isinstance(part, dict)
    ]
    return " ".join(text for text in texts if text)


def response_for(model_name: str, prompt: str, *, int_enums: bool = False) -> JsonObject:
    """A GenerateContentResponse with one candidate whose text is a fixed function of the input.

    ``finishReason`` is ``STOP``, or its number with ``int_enums``.
    """
    echo = prompt[:PROMPT_ECHO_MAX_CHARS]
    text = f"[emulated reply from {model_name}; no model was run] You said: {echo}"
    prompt_tokens, reply_tokens = len(prompt.split()), len(text.split())
    finish = FINISH_REASON_STOP_NUMBER if int_enums else FINISH_REASON_STOP
    return {
        "candidates": [
            {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": reply_tokens,
            "totalTokenCount": prompt_tokens + reply_tokens,
        },
        "modelVersion": model_name,
    }
