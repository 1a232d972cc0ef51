"""Listing tuned models and operations: ownership, order, paging, filters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from emulator import EmulatorConfig, running_emulator
from tests.clocks import FakeClock
from tests.emulator.helpers import (
    GRANTS,
    OWNER,
    bearer,
    create_model,
    error_of,
    model_body,
)


async def _create_many(http: httpx.AsyncClient, headers: dict[str, str], count: int) -> None:
    for index in range(count):
        await create_model(http, headers, f"model-{index:02d}", model_body(examples=4))


async def _list(http: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await http.get("/v1beta/tunedModels", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(page: dict[str, Any]) -> list[str]:
    return [model["name"].removeprefix("tunedModels/") for model in page.get("tunedModels", [])]


async def test_empty_list_is_an_empty_object(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    assert await _list(http, owner) == {}


async def test_pages_of_ten_cover_all_models_in_creation_order(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await _create_many(http, owner, 25)

    first = await _list(http, owner, pageSize=10)
    second = await _list(http, owner, pageSize=10, pageToken=first["nextPageToken"])
    third = await _list(http, owner, pageSize=10, pageToken=second["nextPageToken"])

    assert _ids(first) + _ids(second) + _ids(third) == [f"model-{i:02d}" for i in range(25)]
    assert [len(_ids(page)) for page in (first, second, third)] == [10, 10, 5]
    assert "nextPageToken" not in third


async def test_default_page_size_is_ten(http: httpx.AsyncClient, owner: dict[str, str]) -> None:
    await _create_many(http, owner, 11)

    page = await _list(http, owner)

    assert len(_ids(page)) == 10
    assert page["nextPageToken"]


async def test_an_exact_last_page_has_no_token(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await _create_many(http, owner, 10)

    page = await _list(http, owner, pageSize=10)

    assert len(_ids(page)) == 10
    assert "nextPageToken" not in page


async def test_paging_survives_a_deletion(http: httpx.AsyncClient, owner: dict[str, str]) -> None:
    await _create_many(http, owner, 4)
    first = await _list(http, owner, pageSize=2)
    await http.delete("/v1beta/tunedModels/model-00", headers=owner)

    second = await _list(http, owner, pageSize=2, pageToken=first["nextPageToken"])

    assert _ids(second) == ["model-02", "model-03"]


@pytest.mark.parametrize("token", ["garbage!", "bm90LWpzb24", "eyJ4IjogMX0"])
async def test_bad_page_token_is_400(
    http: httpx.AsyncClient, owner: dict[str, str], token: str
) -> None:
    response = await http.get("/v1beta/tunedModels", params={"pageToken": token}, headers=owner)

    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"


async def test_negative_page_size_is_400(http: httpx.AsyncClient, owner: dict[str, str]) -> None:
    response = await http.get("/v1beta/tunedModels", params={"pageSize": -1}, headers=owner)

    assert response.status_code == 400


async def test_large_page_sizes_are_clamped_to_the_maximum(clock: FakeClock) -> None:
    config = EmulatorConfig(grants=GRANTS, page_size_default=3, page_size_max=5)
    async with running_emulator(config, clock) as url, httpx.AsyncClient(base_url=url) as http:
        headers = await bearer(http, OWNER)
        await _create_many(http, headers, 7)

        page = await _list(http, headers, pageSize=1000)

    assert len(_ids(page)) == 5
    assert page["nextPageToken"]


async def test_list_shows_only_the_callers_models(
    http: httpx.AsyncClient, owner: dict[str, str], other: dict[str, str]
) -> None:
    await create_model(http, owner, "mine")
    await create_model(http, other, "theirs")

    assert _ids(await _list(http, owner)) == ["mine"]
    assert _ids(await _list(http, other)) == ["theirs"]


async def test_filter_matches_display_name_or_description(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await create_model(http, owner, "alpha", model_body(display_name="Alpha poems"))
    await create_model(http, owner, "beta", model_body(display_name="b", description="POEMS too"))
    await create_model(http, owner, "gamma", model_body(display_name="gamma"))

    poems = await _list(http, owner, filter="owner:me poems")
    everyone = await _list(http, owner, filter="readers:everyone")

    assert _ids(poems) == ["alpha", "beta"]
    assert everyone == {}


async def test_operations_list_holds_the_create_operation(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    operation = await create_model(http, owner, "with-op")

    response = await http.get("/v1beta/tunedModels/with-op/operations", headers=owner)

    assert response.status_code == 200
    assert response.json() == {"operations": [operation]}
