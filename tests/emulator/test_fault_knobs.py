"""Fault knobs beyond a plain status: latency, dropped connections, validation, the listing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import pytest

from tests.emulator.helpers import (
    create_model,
    emulator_stats,
    error_of,
    inject_faults,
    model_body,
)

LATENCY_S = 0.3


async def _create(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.post(
        "/v1beta/tunedModels", params={"tunedModelId": "lost"}, json=model_body(), headers=headers
    )


async def _pending(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/_emulator/faults")
    assert response.status_code == 200, response.text
    rules: list[dict[str, Any]] = response.json()["rules"]
    return rules


async def test_latency_alone_delays_a_normal_answer(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(http, {"route": "tunedModels.list", "latency_s": LATENCY_S})

    started = time.monotonic()
    slow = await http.get("/v1beta/tunedModels", headers=owner)
    slow_s = time.monotonic() - started
    started = time.monotonic()
    fast = await http.get("/v1beta/tunedModels", headers=owner)
    fast_s = time.monotonic() - started

    assert slow.status_code == fast.status_code == 200
    assert slow_s >= LATENCY_S
    assert fast_s < LATENCY_S  # used up after one request


async def test_latency_with_a_status_answers_the_error_late(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(
        http, {"route": "tunedModels.create", "status": 503, "latency_s": LATENCY_S}
    )

    started = time.monotonic()
    response = await _create(http, owner)
    elapsed_s = time.monotonic() - started

    assert response.status_code == 503
    assert elapsed_s >= LATENCY_S
    assert (await emulator_stats(http))["models"] == 0


async def test_latency_is_real_time_so_a_client_timeout_fires(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(http, {"route": "tunedModels.get", "latency_s": 1})

    with pytest.raises(httpx.ReadTimeout):
        await http.get("/v1beta/tunedModels/any", headers=owner, timeout=0.2)


async def test_drop_creates_the_model_but_sends_no_answer(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(http, {"route": "tunedModels.create", "drop": True})

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await _create(http, owner)
    model = await http.get("/v1beta/tunedModels/lost", headers=owner)
    retry = await _create(http, owner)

    assert model.status_code == 200
    assert model.json()["state"] == "CREATING"
    assert retry.status_code == 409
    stats = await emulator_stats(http)
    assert stats["creates"] == 1
    assert stats["requests"]["POST tunedModels.create"] == 2


async def test_drop_cuts_even_an_error_answer(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(http, {"route": "tunedModels.get", "drop": True, "times": 2})

    for _ in range(2):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await http.get("/v1beta/tunedModels/missing", headers=owner)
    after = await http.get("/v1beta/tunedModels/missing", headers=owner)

    assert after.status_code == 404


async def test_listing_shows_pending_rules_with_times_left(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(
        http,
        {"route": "tunedModels.list", "status": 429, "retry_delay_s": 30, "times": 2},
        {"route": "tunedModels.create", "drop": True},
        {"route": "tunedModels.create", "training": {"stall_at_step": 4}, "latency_s": 0.01},
    )
    await http.get("/v1beta/tunedModels", headers=owner)

    rules = await _pending(http)

    assert rules == [
        {"route": "tunedModels.list", "times": 1, "status": 429, "retry_delay_s": 30.0},
        {"route": "tunedModels.create", "times": 1, "drop": True},
        {
            "route": "tunedModels.create",
            "times": 1,
            "latency_s": 0.01,
            "training": {"stall_at_step": 4},
        },
    ]


async def test_listed_rules_can_be_posted_back(http: httpx.AsyncClient) -> None:
    await inject_faults(
        http,
        {"route": "operations.get", "status": 503, "after": True, "message": "try later"},
        {"route": "tunedModels.create", "training": {"fail_at_step": 2}, "times": 3},
    )
    listed = await _pending(http)
    await http.delete("/_emulator/faults")

    await inject_faults(http, *listed)

    assert await _pending(http) == listed


async def test_delete_clears_every_kind_of_rule(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(
        http,
        {"route": "tunedModels.create", "drop": True},
        {"route": "tunedModels.create", "training": {"fail_at_step": 1}},
        {"route": "tunedModels.list", "latency_s": 5},
    )

    cleared = await http.delete("/_emulator/faults")
    operation = await create_model(http, owner, "clean")
    listing = await http.get("/v1beta/tunedModels", headers=owner, timeout=2.0)

    assert cleared.status_code == 200
    assert await _pending(http) == []
    assert "done" not in operation
    assert listing.status_code == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"route": "tunedModels.get"},
        {"route": "tunedModels.get", "latency_s": 0},
        {"route": "tunedModels.get", "latency_s": -1},
        {"route": "tunedModels.get", "latency_s": "1"},
        {"route": "tunedModels.get", "latency_s": True},
        {"route": "tunedModels.get", "drop": "yes"},
        {"route": "tunedModels.get", "drop": True, "status": 503},
        {"route": "tunedModels.get", "after": True},
        {"route": "tunedModels.get", "training": {"fail_at_step": 1}},
        {"route": "tunedModels.create", "training": {"fail_at_step": 1}, "status": 503},
        {"route": "tunedModels.create", "training": {"fail_at_step": -1}},
        {"route": "tunedModels.create", "training": {"stall_at_step": 1.5}},
        {"route": "tunedModels.create", "training": {"fail_at_step": 1, "stall_at_step": 2}},
        {"route": "tunedModels.create", "training": {"explode_at_step": 1}},
        {"route": "tunedModels.create", "training": 3},
        {"route": "tunedModels.get", "status": 503, "latency": 1},
        {"route": ["tunedModels.get"], "status": 503},
    ],
)
async def test_malformed_new_knobs_are_400(http: httpx.AsyncClient, rule: dict[str, Any]) -> None:
    response = await http.post("/_emulator/faults", json={"rules": [rule]})

    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"


async def test_one_bad_rule_queues_none(http: httpx.AsyncClient) -> None:
    good = {"route": "tunedModels.list", "status": 503}
    bad = {"route": "tunedModels.list", "drop": 1}

    response = await http.post("/_emulator/faults", json={"rules": [good, bad]})

    assert response.status_code == 400
    assert await _pending(http) == []


async def test_training_with_after_creates_the_model_and_answers_the_error(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(
        http,
        {
            "route": "tunedModels.create",
            "status": 503,
            "after": True,
            "training": {"stall_at_step": 0},
        },
    )

    lost = await _create(http, owner)
    model = await http.get("/v1beta/tunedModels/lost", headers=owner)

    assert lost.status_code == 503
    assert model.json()["state"] == "CREATING"
    assert "snapshots" not in model.json()["tuningTask"]


async def test_hold_performs_the_request_then_keeps_the_answer_back(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await http.post(
        "/_emulator/faults", json={"rules": [{"route": "tunedModels.create", "hold_s": 5}]}
    )
    create = asyncio.create_task(
        http.post("/v1beta/tunedModels?tunedModelId=held", json=model_body(), headers=owner)
    )
    async with asyncio.timeout(3):
        while (await http.get("/v1beta/tunedModels/held", headers=owner)).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert not create.done()  # the model exists, the creator has not heard yet
    create.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await create
