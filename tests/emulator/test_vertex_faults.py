"""Fault rules on the Vertex routes: errors, lost answers, dropped connections, training knobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.clocks import FakeClock
from tests.emulator.helpers import detail, error_of, inject_faults
from tests.emulator.test_vertex_jobs import (
    PARENT,
    PENDING_S,
    RUN_S,
    VertexEmulator,
    create_job,
    get_job,
    job_body,
    vertex_emulator,
)

JOBS = f"/v1/{PARENT}/tuningJobs"


@pytest.fixture
async def vertex(clock: FakeClock) -> AsyncIterator[VertexEmulator]:
    """An emulator with a 10-example training file (3 epochs: 6 steps)."""
    async with vertex_emulator(clock) as emulator:
        emulator.put_file()
        yield emulator


async def upstream_jobs(vertex: VertexEmulator) -> list[dict[str, Any]]:
    """Every job the emulator holds, whoever owns it."""
    response = await vertex.http.get("/_emulator/vertex/tuningJobs")
    jobs: list[dict[str, Any]] = response.json()["tuningJobs"]
    return jobs


async def test_a_503_creates_nothing(vertex: VertexEmulator) -> None:
    await inject_faults(vertex.http, {"route": "tuningJobs.create", "status": 503})

    response = await vertex.http.post(JOBS, json=job_body(), headers=await vertex.headers())

    assert response.status_code == 503
    error = error_of(response)
    assert error["status"] == "UNAVAILABLE"
    assert detail(error, "google.rpc.ErrorInfo")["domain"] == "aiplatform.googleapis.com"
    assert await upstream_jobs(vertex) == []


async def test_a_429_carries_retry_info_and_an_aiplatform_quota(vertex: VertexEmulator) -> None:
    await inject_faults(
        vertex.http, {"route": "tuningJobs.get", "status": 429, "retry_delay_s": 30}
    )
    name = (await create_job(vertex))["name"]

    response = await vertex.http.get(f"/v1/{name}", headers=await vertex.headers())

    assert response.status_code == 429
    error = error_of(response)
    assert detail(error, "google.rpc.RetryInfo")["retryDelay"] == "30s"
    violation = detail(error, "google.rpc.QuotaFailure")["violations"][0]
    assert violation["quotaMetric"].startswith("aiplatform.googleapis.com/")


async def test_after_creates_the_job_but_answers_the_error(vertex: VertexEmulator) -> None:
    await inject_faults(vertex.http, {"route": "tuningJobs.create", "status": 503, "after": True})

    response = await vertex.http.post(JOBS, json=job_body(), headers=await vertex.headers())

    assert response.status_code == 503
    assert [job["labels"] for job in await upstream_jobs(vertex)] == [{"platform-job": "job-1"}]


async def test_drop_creates_the_job_and_sends_no_answer(vertex: VertexEmulator) -> None:
    await inject_faults(vertex.http, {"route": "tuningJobs.create", "drop": True})

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await vertex.http.post(JOBS, json=job_body(), headers=await vertex.headers())

    assert len(await upstream_jobs(vertex)) == 1


async def test_fail_at_step(vertex: VertexEmulator) -> None:
    await inject_faults(
        vertex.http, {"route": "tuningJobs.create", "training": {"fail_at_step": 3}}
    )
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(PENDING_S + 1.0)
    running = await get_job(vertex, name)
    vertex.clock.advance(0.5)

    failed = await get_job(vertex, name)

    assert running["state"] == "JOB_STATE_RUNNING"
    assert failed["state"] == "JOB_STATE_FAILED"
    assert failed["error"] == {
        "code": 13,
        "message": "Tuning failed: emulated training failure at step 3.",
    }
    assert failed["endTime"] == "2026-11-21T13:40:06.500000Z"
    assert "tunedModel" not in failed


async def test_stall_at_step_runs_for_ever_until_cancelled(vertex: VertexEmulator) -> None:
    await inject_faults(
        vertex.http, {"route": "tuningJobs.create", "training": {"stall_at_step": 2}}
    )
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(3600.0)
    stalled = await get_job(vertex, name)

    await vertex.http.post(f"/v1/{name}:cancel", json={}, headers=await vertex.headers())
    vertex.clock.advance(1.0)

    assert stalled["state"] == "JOB_STATE_RUNNING"
    assert (await get_job(vertex, name))["state"] == "JOB_STATE_CANCELLED"


async def test_fail_creating_endpoint_leaves_an_uploaded_model(vertex: VertexEmulator) -> None:
    await inject_faults(
        vertex.http, {"route": "tuningJobs.create", "training": {"fail_creating_endpoint": True}}
    )
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(PENDING_S + RUN_S)

    failed = await get_job(vertex, name)
    model = await vertex.http.get(
        f"/v1/{failed['tunedModel']['model']}", headers=await vertex.headers()
    )

    assert failed["state"] == "JOB_STATE_FAILED"
    assert failed["error"] == {"code": 13, "message": "Failed to create endpoint"}
    assert set(failed["tunedModel"]) == {"model"}
    assert model.status_code == 200
    assert "deployedModels" not in model.json()


async def test_fail_creating_endpoint_is_for_tuning_jobs_only(vertex: VertexEmulator) -> None:
    rule = {"route": "tunedModels.create", "training": {"fail_creating_endpoint": True}}

    response = await vertex.http.post("/_emulator/faults", json={"rules": [rule]})

    assert response.status_code == 400


async def test_the_rule_lists_back_as_posted(vertex: VertexEmulator) -> None:
    rule = {"route": "tuningJobs.create", "training": {"fail_creating_endpoint": True}}
    await inject_faults(vertex.http, rule)

    listed = (await vertex.http.get("/_emulator/faults")).json()["rules"]

    assert listed == [rule | {"times": 1}]


@pytest.mark.parametrize(
    "route",
    [
        "tuningJobs.list",
        "tuningJobs.cancel",
        "vertexModels.get",
        "vertexModels.delete",
        "endpoints.get",
        "endpoints.delete",
        "endpoints.undeployModel",
        "endpoints.generateContent",
    ],
)
async def test_every_vertex_route_takes_fault_rules(vertex: VertexEmulator, route: str) -> None:
    response = await vertex.http.post(
        "/_emulator/faults", json={"rules": [{"route": route, "status": 500}]}
    )

    assert response.status_code == 200
