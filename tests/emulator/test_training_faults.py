"""``training`` fault rules: the create succeeds, then training fails or stalls at step K."""

from __future__ import annotations

from typing import Any

import httpx

from tests.clocks import FakeClock
from tests.emulator.helpers import create_model, inject_faults, model_body

# 15 examples, 5 epochs, batch 2: 38 steps at 2 steps per second (the fixture's defaults).
TOTAL_STEPS = 38


async def _poll(http: httpx.AsyncClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    response = await http.get(f"/v1/{name}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _model(http: httpx.AsyncClient, headers: dict[str, str], model_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1beta/tunedModels/{model_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _training_rule(http: httpx.AsyncClient, times: int = 1, **training: int) -> None:
    await inject_faults(http, {"route": "tunedModels.create", "training": training, "times": times})


async def test_fail_at_step_ends_failed_at_that_step(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await _training_rule(http, fail_at_step=7)

    operation = await create_model(http, owner, "fails-at-7")
    clock.advance(3.0)  # step 6
    running = await _poll(http, owner, operation["name"])
    clock.advance(0.5)  # step 7
    failed = await _poll(http, owner, operation["name"])
    clock.advance(60.0)
    later = await _poll(http, owner, operation["name"])
    model = await _model(http, owner, "fails-at-7")

    assert "done" not in operation
    assert "done" not in running
    assert failed["done"] is True
    assert "response" not in failed
    assert failed["error"] == {
        "code": 13,
        "message": "Tuning failed: emulated training failure at step 7.",
    }
    assert failed["metadata"]["completedSteps"] == 7
    assert later == failed
    assert model["state"] == "FAILED"
    assert model["tuningTask"]["completeTime"] == "2026-11-21T13:40:03.500Z"
    assert len(model["tuningTask"]["snapshots"]) == 7


async def test_stall_at_step_stops_progress_for_ever(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await _training_rule(http, stall_at_step=5)
    operation = await create_model(http, owner, "stalls")

    clock.advance(2.0)  # step 4
    early = await _poll(http, owner, operation["name"])
    clock.advance(3_000.0)  # far past the natural end (19 s); tokens last 3600 s
    stalled = await _poll(http, owner, operation["name"])
    model = await _model(http, owner, "stalls")

    assert early["metadata"]["completedSteps"] == 4
    assert set(stalled) == {"name", "metadata"}
    assert stalled["metadata"]["completedSteps"] == 5
    assert stalled["metadata"]["totalSteps"] == TOTAL_STEPS
    assert model["state"] == "CREATING"
    assert "completeTime" not in model["tuningTask"]
    assert len(model["tuningTask"]["snapshots"]) == 5


async def test_a_stalled_run_ends_when_cancelled(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await _training_rule(http, stall_at_step=5)
    operation = await create_model(http, owner, "unstuck")
    clock.advance(100.0)

    cancelled = await http.post(f"/v1/{operation['name']}:cancel", headers=owner)
    clock.advance(100.0)
    polled = await _poll(http, owner, operation["name"])
    model = await _model(http, owner, "unstuck")

    assert cancelled.status_code == 200
    assert polled["done"] is True
    assert polled["error"] == {"code": 1, "message": "Operation cancelled."}
    assert polled["metadata"]["completedSteps"] == 5
    assert model["state"] == "FAILED"
    assert model["tuningTask"]["completeTime"] == "2026-11-21T13:41:40Z"


async def test_a_stalled_model_can_be_deleted(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await _training_rule(http, stall_at_step=1)
    await create_model(http, owner, "stuck")
    clock.advance(30.0)

    deleted = await http.delete("/v1beta/tunedModels/stuck", headers=owner)
    after = await http.get("/v1beta/tunedModels/stuck", headers=owner)

    assert deleted.status_code == 200
    assert after.status_code == 404


async def test_steps_beyond_the_total_are_clamped(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await _training_rule(http, fail_at_step=1000)
    operation = await create_model(http, owner, "clamped")
    clock.advance(18.5)  # step 37
    running = await _poll(http, owner, operation["name"])
    clock.advance(0.5)

    failed = await _poll(http, owner, operation["name"])

    assert "done" not in running
    assert failed["metadata"]["completedSteps"] == TOTAL_STEPS
    assert failed["error"]["message"] == (
        f"Tuning failed: emulated training failure at step {TOTAL_STEPS}."
    )


async def test_fail_at_step_zero_fails_before_the_first_step(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await _training_rule(http, fail_at_step=0)

    operation = await create_model(http, owner, "dead-on-arrival")
    model = await _model(http, owner, "dead-on-arrival")

    assert operation["done"] is True
    assert operation["error"]["code"] == 13
    assert "completedSteps" not in operation["metadata"]  # zero is omitted
    assert model["state"] == "FAILED"


async def test_times_covers_the_next_n_creates(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await _training_rule(http, times=2, stall_at_step=3)
    names = [(await create_model(http, owner, f"m{n}"))["name"] for n in range(3)]
    clock.advance(60.0)

    polled = [await _poll(http, owner, name) for name in names]

    assert [p["metadata"]["completedSteps"] for p in polled] == [3, 3, TOTAL_STEPS]
    assert ["done" in p for p in polled] == [False, False, True]


async def test_a_rule_takes_precedence_over_the_fail_marker(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await _training_rule(http, stall_at_step=30)
    body = model_body(display_name="marked [fail]")
    operation = await create_model(http, owner, "marked", body)
    clock.advance(60.0)

    polled = await _poll(http, owner, operation["name"])

    assert "done" not in polled
    assert polled["metadata"]["completedSteps"] == 30


async def test_a_rejected_create_uses_the_rule_up(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await _training_rule(http, fail_at_step=2)
    rejected = await http.post(
        "/v1beta/tunedModels", params={"tunedModelId": "Bad Id"}, json=model_body(), headers=owner
    )
    operation = await create_model(http, owner, "normal")
    clock.advance(60.0)

    polled = await _poll(http, owner, operation["name"])

    assert rejected.status_code == 400
    assert polled["response"]["state"] == "ACTIVE"
