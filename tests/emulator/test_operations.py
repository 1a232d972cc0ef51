"""Operations: v1 and v1beta polling, v1-only cancel, unimplemented delete, unknown routes."""

from __future__ import annotations

import httpx

from tests.clocks import FakeClock
from tests.emulator.helpers import create_model, error_of


async def test_operation_is_served_under_v1_and_v1beta(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "both")
    clock.advance(1.0)

    v1beta = await http.get(f"/v1beta/{operation['name']}", headers=owner)
    v1 = await http.get(f"/v1/{operation['name']}", headers=owner)

    assert v1beta.status_code == v1.status_code == 200
    assert v1beta.json() == v1.json()
    assert v1.json()["metadata"]["completedSteps"] == 2


async def test_unknown_operation_is_404(http: httpx.AsyncClient, owner: dict[str, str]) -> None:
    await create_model(http, owner, "known")

    response = await http.get("/v1beta/tunedModels/known/operations/nosuchop", headers=owner)

    assert response.status_code == 404
    assert error_of(response)["status"] == "NOT_FOUND"


async def test_cancel_ends_the_operation_with_code_1_and_fails_the_model(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "cancelled")
    clock.advance(2.0)

    cancelled = await http.post(f"/v1/{operation['name']}:cancel", headers=owner)
    clock.advance(60.0)
    polled = (await http.get(f"/v1/{operation['name']}", headers=owner)).json()
    model = (await http.get("/v1beta/tunedModels/cancelled", headers=owner)).json()

    assert cancelled.status_code == 200
    assert cancelled.json() == {}
    assert polled["done"] is True
    assert polled["error"] == {"code": 1, "message": "Operation cancelled."}
    assert "response" not in polled
    assert polled["metadata"]["completedSteps"] == 4
    assert model["state"] == "FAILED"
    assert model["tuningTask"]["completeTime"] == "2026-11-21T13:40:02Z"
    assert len(model["tuningTask"]["snapshots"]) == 4


async def test_cancel_of_a_finished_operation_changes_nothing(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "finished")
    clock.advance(30.0)
    before = (await http.get(f"/v1/{operation['name']}", headers=owner)).json()

    cancelled = await http.post(f"/v1/{operation['name']}:cancel", headers=owner)
    after = (await http.get(f"/v1/{operation['name']}", headers=owner)).json()

    assert cancelled.json() == {}
    assert after == before
    assert after["response"]["state"] == "ACTIVE"


async def test_cancel_twice_is_harmless(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "twice")
    clock.advance(1.0)
    await http.post(f"/v1/{operation['name']}:cancel", headers=owner)
    clock.advance(1.0)

    again = await http.post(f"/v1/{operation['name']}:cancel", headers=owner)
    polled = (await http.get(f"/v1/{operation['name']}", headers=owner)).json()

    assert again.status_code == 200
    assert polled["metadata"]["completedSteps"] == 2


async def test_cancel_under_v1beta_is_404(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "v1-only")

    response = await http.post(f"/v1beta/{operation['name']}:cancel", headers=owner)
    polled = (await http.get(f"/v1/{operation['name']}", headers=owner)).json()

    assert response.status_code == 404
    assert error_of(response)["status"] == "NOT_FOUND"
    assert "done" not in polled


async def test_deleting_an_operation_is_501(http: httpx.AsyncClient, owner: dict[str, str]) -> None:
    operation = await create_model(http, owner, "keep-op")

    response = await http.delete(f"/v1beta/{operation['name']}", headers=owner)

    assert response.status_code == 501
    assert error_of(response)["status"] == "UNIMPLEMENTED"
    assert (await http.get(f"/v1beta/{operation['name']}", headers=owner)).status_code == 200


async def test_unknown_route_is_404_with_the_envelope(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1beta/somethingElse")

    assert response.status_code == 404
    assert error_of(response)["status"] == "NOT_FOUND"
