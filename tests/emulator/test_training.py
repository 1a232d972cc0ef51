"""Simulated training: step arithmetic, progress with the clock, snapshots, failure."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from emulator import EmulatorConfig, running_emulator
from tests.clocks import FakeClock
from tests.emulator.helpers import GRANTS, OWNER, bearer, create_model, model_body

TUNED_MODEL_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.TunedModel"


async def _poll(http: httpx.AsyncClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    response = await http.get(f"/v1beta/{name}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    "case",
    [(15, 5, 2, 38), (15, 5, 4, 19), (20, 1, 4, 5), (1, 1, 16, 1)],
    ids=["15x5/2", "15x5/4", "20x1/4", "1x1/16"],
)
async def test_total_steps_is_ceil_of_examples_times_epochs_over_batch(
    http: httpx.AsyncClient, owner: dict[str, str], case: tuple[int, int, int, int]
) -> None:
    examples, epochs, batch_size, total = case
    body = model_body(examples=examples, epochs=epochs, batch_size=batch_size)

    operation = await create_model(http, owner, "steps", body)

    assert operation["metadata"]["totalSteps"] == total


async def test_progress_advances_with_the_clock(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "progress")
    clock.advance(5.0)  # 2 steps per second

    metadata = (await _poll(http, owner, operation["name"]))["metadata"]

    assert metadata["completedSteps"] == 10
    assert metadata["totalSteps"] == 38
    assert metadata["completedPercent"] == pytest.approx(100 * 10 / 38)
    assert len(metadata["snapshots"]) == 10


async def test_running_operation_has_no_done_response_or_error(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "running")
    clock.advance(18.9)

    polled = await _poll(http, owner, operation["name"])

    assert set(polled) == {"name", "metadata"}
    assert polled["metadata"]["completedSteps"] == 37


async def test_finished_operation_is_done_with_the_model_as_response(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "finished")
    clock.advance(19.0)  # 38 steps at 2 steps per second

    polled = await _poll(http, owner, operation["name"])
    model = (await http.get("/v1beta/tunedModels/finished", headers=owner)).json()

    assert polled["done"] is True
    assert "error" not in polled
    assert polled["metadata"]["completedSteps"] == 38
    assert polled["metadata"]["completedPercent"] == 100
    response = polled["response"]
    assert response["@type"] == TUNED_MODEL_TYPE
    assert response["name"] == "tunedModels/finished"
    assert response["state"] == "ACTIVE"
    assert model["state"] == "ACTIVE"
    assert model["tuningTask"]["completeTime"] == "2026-11-21T13:40:19Z"
    assert model["updateTime"] == "2026-11-21T13:40:19Z"
    assert model["createTime"] == "2026-11-21T13:40:00Z"


async def test_progress_stops_at_the_total(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "capped")
    clock.advance(600.0)

    metadata = (await _poll(http, owner, operation["name"]))["metadata"]

    assert metadata["completedSteps"] == 38
    assert len(metadata["snapshots"]) == 38


async def test_snapshots_follow_proto3_json(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "snapshots")
    clock.advance(19.0)

    snapshots = (await _poll(http, owner, operation["name"]))["metadata"]["snapshots"]

    first, eighth = snapshots[0], snapshots[7]
    assert set(first) == {"step", "meanLoss", "computeTime"}  # epoch 0 is omitted
    assert first["step"] == 1
    assert first["computeTime"] == "2026-11-21T13:40:00.500Z"
    assert eighth["epoch"] == 1  # (8 * 2) // 15
    assert snapshots[-1]["epoch"] == 5  # (38 * 2) // 15
    assert all(s["meanLoss"] >= 0 for s in snapshots)
    assert snapshots[-1]["meanLoss"] < first["meanLoss"] / 2


async def test_model_and_operation_carry_the_same_snapshots(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "same")
    clock.advance(3.0)

    from_operation = (await _poll(http, owner, operation["name"]))["metadata"]["snapshots"]
    model = (await http.get("/v1beta/tunedModels/same", headers=owner)).json()

    assert len(from_operation) == 6
    assert model["tuningTask"]["snapshots"] == from_operation
    assert model["state"] == "CREATING"


async def test_snapshots_are_stable_between_reads(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    operation = await create_model(http, owner, "stable")
    clock.advance(10.0)

    first = await _poll(http, owner, operation["name"])
    second = await _poll(http, owner, operation["name"])

    assert first == second


async def test_fail_marker_fails_at_half_the_steps(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    body = model_body(display_name="doomed [fail]")
    operation = await create_model(http, owner, "doomed", body)
    clock.advance(9.0)
    running = await _poll(http, owner, operation["name"])
    clock.advance(1.0)

    failed = await _poll(http, owner, operation["name"])
    model = (await http.get("/v1beta/tunedModels/doomed", headers=owner)).json()

    assert "done" not in running
    assert failed["done"] is True
    assert "response" not in failed
    assert failed["error"] == {"code": 13, "message": "Tuning failed: emulated training failure."}
    assert failed["metadata"]["completedSteps"] == 19
    assert model["state"] == "FAILED"
    assert model["tuningTask"]["completeTime"] == "2026-11-21T13:40:09.500Z"


async def test_steps_per_second_sets_the_pace(clock: FakeClock) -> None:
    async with (
        running_emulator(EmulatorConfig(steps_per_second=0.5, grants=GRANTS), clock) as url,
        httpx.AsyncClient(base_url=url) as slow,
    ):
        headers = await bearer(slow, OWNER)
        operation = await create_model(slow, headers, "slow")
        clock.advance(10.0)
        polled = await _poll(slow, headers, operation["name"])

    assert polled["metadata"]["completedSteps"] == 5


async def test_a_head_start_makes_a_new_model_report_its_steps_at_once(clock: FakeClock) -> None:
    config = EmulatorConfig(steps_per_second=0.5, grants=GRANTS, head_start_steps=30)
    async with running_emulator(config, clock) as url, httpx.AsyncClient(base_url=url) as http:
        headers = await bearer(http, OWNER)
        body = model_body(examples=20, epochs=10, batch_size=1)
        created = await create_model(http, headers, "begun", body)
        clock.advance(4.0)
        polled = await _poll(http, headers, created["name"])

    assert created["metadata"]["completedSteps"] == 30
    steps = [s["step"] for s in polled["metadata"]["snapshots"]]
    assert steps == list(range(1, 33)) and "done" not in polled  # and goes on from there


def test_a_negative_head_start_is_refused() -> None:
    with pytest.raises(ValueError, match="head_start_steps"):
        EmulatorConfig(head_start_steps=-1)
