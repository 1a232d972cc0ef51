"""generateContent on tuned models."""

from __future__ import annotations

from typing import Any

import httpx

from tests.clocks import FakeClock
from tests.emulator.helpers import create_model, error_of

PROMPT = {"contents": [{"parts": [{"text": "What comes after 41?"}]}]}


async def _generate(
    http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> httpx.Response:
    return await http.post("/v1beta/tunedModels/gen:generateContent", json=body, headers=headers)


async def test_active_model_answers_an_emulated_reply(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await create_model(http, owner, "gen")
    clock.advance(60.0)

    first = await _generate(http, owner, PROMPT)
    second = await _generate(http, owner, PROMPT)

    assert first.status_code == 200
    assert first.json() == second.json()
    candidate = first.json()["candidates"][0]
    assert candidate["content"]["role"] == "model"
    assert candidate["finishReason"] == "STOP"
    text = candidate["content"]["parts"][0]["text"]
    assert "emulated" in text
    assert "What comes after 41?" in text
    usage = first.json()["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]


async def test_model_still_training_cannot_generate(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await create_model(http, owner, "gen")

    response = await _generate(http, owner, PROMPT)

    assert response.status_code == 400
    assert error_of(response)["status"] == "FAILED_PRECONDITION"


async def test_generate_without_contents_is_400(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await create_model(http, owner, "gen")
    clock.advance(60.0)

    response = await _generate(http, owner, {"contents": []})

    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"


async def test_a_field_google_does_not_have_is_refused_by_name(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await create_model(http, owner, "gen")
    clock.advance(60.0)

    response = await _generate(http, owner, {**PROMPT, "requestKey": "user-7"})

    assert response.status_code == 400
    error = error_of(response)
    assert error["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "requestKey"' in error["message"]
    known = {**PROMPT, "tools": [], "generationConfig": {"temperature": 0.5}}
    assert (await _generate(http, owner, known)).status_code == 200
