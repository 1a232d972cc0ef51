"""``$alt=json;enum-encoding=int``: enums as numbers, as Google answers its generated clients."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.clocks import FakeClock
from tests.emulator.helpers import create_model, model_body

INT_ENUMS = {"$alt": "json;enum-encoding=int"}


async def _get(
    http: httpx.AsyncClient, headers: dict[str, str], path: str, **params: str
) -> dict[str, Any]:
    response = await http.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_state_is_a_number_when_asked(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "numbered")
    creating = await _get(http, owner, "/v1beta/tunedModels/numbered", **INT_ENUMS)
    clock.advance(19.0)

    active = await _get(http, owner, "/v1beta/tunedModels/numbered", **INT_ENUMS)
    done = await _get(http, owner, f"/v1beta/{operation['name']}", **INT_ENUMS)
    listed = await _get(http, owner, "/v1beta/tunedModels", **INT_ENUMS)
    operations = await _get(http, owner, "/v1beta/tunedModels/numbered/operations", **INT_ENUMS)

    assert creating["state"] == 1
    assert active["state"] == 2
    assert done["response"]["state"] == 2
    assert listed["tunedModels"][0]["state"] == 2
    assert operations["operations"][0]["response"]["state"] == 2


async def test_failed_is_three(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await create_model(http, owner, "failing", model_body(display_name="x [fail]"))
    clock.advance(60.0)

    model = await _get(http, owner, "/v1beta/tunedModels/failing", **INT_ENUMS)

    assert model["state"] == 3


async def test_patch_answers_with_a_number_too(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await create_model(http, owner, "patched")

    response = await http.patch(
        "/v1beta/tunedModels/patched",
        params={"updateMask": "description"} | INT_ENUMS,
        json={"description": "new"},
        headers=owner,
    )

    assert response.json()["state"] == 1


@pytest.mark.parametrize("params", [{}, {"$alt": "json"}, {"$alt": "json;enum-encoding=name"}])
async def test_state_is_a_name_otherwise(
    http: httpx.AsyncClient, owner: dict[str, str], params: dict[str, str]
) -> None:
    await create_model(http, owner, "named")

    model = await _get(http, owner, "/v1beta/tunedModels/named", **params)

    assert model["state"] == "CREATING"


async def test_generate_finish_reason_is_a_number_when_asked(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await create_model(http, owner, "speaker")
    clock.advance(60.0)
    body = {"contents": [{"parts": [{"text": "hello"}]}]}

    numbered = await http.post(
        "/v1beta/tunedModels/speaker:generateContent", params=INT_ENUMS, json=body, headers=owner
    )
    named = await http.post("/v1beta/tunedModels/speaker:generateContent", json=body, headers=owner)

    assert numbered.json()["candidates"][0]["finishReason"] == 1
    assert named.json()["candidates"][0]["finishReason"] == "STOP"
