"""Updating and deleting tuned models, and ownership between OAuth clients."""

from __future__ import annotations

import httpx
import pytest

from tests.clocks import FakeClock
from tests.emulator.helpers import create_model, error_of


async def test_patch_with_mask_updates_only_the_masked_fields(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await create_model(http, owner, "patched")
    clock.advance(2.0)

    response = await http.patch(
        "/v1beta/tunedModels/patched",
        params={"updateMask": "displayName,temperature"},
        json={"displayName": "renamed", "temperature": 0.3, "description": "ignored"},
        headers=owner,
    )
    model = (await http.get("/v1beta/tunedModels/patched", headers=owner)).json()

    assert response.status_code == 200
    assert response.json() == model
    assert model["displayName"] == "renamed"
    assert model["temperature"] == 0.3
    assert "description" not in model
    assert model["updateTime"] == "2026-11-21T13:40:02Z"
    assert model["createTime"] == "2026-11-21T13:40:00Z"


async def test_patch_mask_accepts_snake_case_paths(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await create_model(http, owner, "snaky")

    response = await http.patch(
        "/v1beta/tunedModels/snaky",
        params={"update_mask": "top_k"},
        json={"top_k": 7},
        headers=owner,
    )

    assert response.json()["topK"] == 7


async def test_patch_without_mask_updates_the_fields_given(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await create_model(http, owner, "no-mask")

    response = await http.patch(
        "/v1beta/tunedModels/no-mask", json={"description": "now described"}, headers=owner
    )

    model = response.json()
    assert model["description"] == "now described"
    assert model["displayName"] == "number generator model"


@pytest.mark.parametrize("path", ["baseModel", "tuningTask", "name", "state", "base_model"])
async def test_patch_of_an_immutable_field_is_400(
    http: httpx.AsyncClient, owner: dict[str, str], path: str
) -> None:
    await create_model(http, owner, "fixed")

    response = await http.patch(
        "/v1beta/tunedModels/fixed",
        params={"updateMask": f"displayName,{path}"},
        json={"displayName": "changed", "baseModel": "models/other"},
        headers=owner,
    )
    model = (await http.get("/v1beta/tunedModels/fixed", headers=owner)).json()

    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"
    assert model["displayName"] == "number generator model"


async def test_patch_with_an_invalid_value_is_400(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await create_model(http, owner, "strict")

    response = await http.patch("/v1beta/tunedModels/strict", json={"topP": 2}, headers=owner)

    assert response.status_code == 400
    assert "topP" in error_of(response)["message"]


async def test_delete_answers_empty_object_then_the_model_is_gone(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    operation = await create_model(http, owner, "doomed")

    deleted = await http.delete("/v1beta/tunedModels/doomed", headers=owner)
    model = await http.get("/v1beta/tunedModels/doomed", headers=owner)
    polled = await http.get(f"/v1beta/{operation['name']}", headers=owner)

    assert deleted.status_code == 200
    assert deleted.json() == {}
    assert model.status_code == 404
    assert error_of(model) == {
        "code": 404,
        "message": "Tuned model tunedModels/doomed does not exist.",
        "status": "NOT_FOUND",
    }
    assert polled.status_code == 404


async def test_a_deleted_id_can_be_used_again(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await create_model(http, owner, "reused")
    await http.delete("/v1beta/tunedModels/reused", headers=owner)

    await create_model(http, owner, "reused")

    assert (await http.get("/v1beta/tunedModels/reused", headers=owner)).status_code == 200


async def test_another_clients_model_is_403(
    http: httpx.AsyncClient, owner: dict[str, str], other: dict[str, str]
) -> None:
    operation = await create_model(http, owner, "private")

    calls = [
        http.get("/v1beta/tunedModels/private", headers=other),
        http.patch("/v1beta/tunedModels/private", json={"description": "x"}, headers=other),
        http.delete("/v1beta/tunedModels/private", headers=other),
        http.get(f"/v1beta/{operation['name']}", headers=other),
    ]

    for call in calls:
        response = await call
        assert response.status_code == 403
        assert error_of(response)["message"] == (
            "You do not have permission to access tuned model tunedModels/private"
        )
    assert (await http.get("/v1beta/tunedModels/private", headers=owner)).status_code == 200
