"""A tuning job's results over plain HTTP: its model and endpoints, and generation on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from emulator import Grant
from emulator.config import EmulatorConfig
from tests.clocks import FakeClock
from tests.emulator.helpers import AUTH, GRANTS, error_of
from tests.emulator.test_vertex_jobs import (
    PENDING_S,
    RUN_S,
    VertexEmulator,
    create_job,
    get_job,
    job_body,
    vertex_emulator,
)

READ_ONLY = Grant("client-ro", "secret-ro", "refresh-ro", (AUTH + "cloud-platform.read-only",))
PROMPT = {"contents": [{"role": "user", "parts": [{"text": "seven"}]}]}


@pytest.fixture
async def vertex(clock: FakeClock) -> AsyncIterator[VertexEmulator]:
    """An emulator with a 10-example training file and a read-only grant."""
    config = EmulatorConfig(grants=(*GRANTS, READ_ONLY))
    async with vertex_emulator(clock, config) as emulator:
        emulator.put_file()
        yield emulator


async def succeeded(vertex: VertexEmulator) -> dict[str, Any]:
    """A job run to success."""
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(PENDING_S + RUN_S)
    return await get_job(vertex, name)


async def test_the_model_does_not_exist_before_the_job_succeeds(vertex: VertexEmulator) -> None:
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(PENDING_S + RUN_S)
    model = (await get_job(vertex, name))["tunedModel"]["model"]
    vertex.clock.now_s -= 1.0

    response = await vertex.http.get(f"/v1/{model}", headers=await vertex.headers())

    assert response.status_code == 404


async def test_generate_content_until_undeployed(vertex: VertexEmulator) -> None:
    endpoint = (await succeeded(vertex))["tunedModel"]["endpoint"]
    headers = await vertex.headers()
    answer = await vertex.http.post(f"/v1/{endpoint}:generateContent", json=PROMPT, headers=headers)
    deployed = (await vertex.http.get(f"/v1/{endpoint}", headers=headers)).json()
    undeploy = await vertex.http.post(
        f"/v1/{endpoint}:undeployModel",
        json={"deployedModelId": deployed["deployedModels"][0]["id"]},
        headers=headers,
    )

    after = await vertex.http.post(f"/v1/{endpoint}:generateContent", json=PROMPT, headers=headers)

    assert "You said: seven" in answer.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert undeploy.json()["done"] is True
    assert after.status_code == 400
    assert error_of(after)["status"] == "FAILED_PRECONDITION"


async def test_undeploying_an_unknown_deployed_model_is_404(vertex: VertexEmulator) -> None:
    endpoint = (await succeeded(vertex))["tunedModel"]["endpoint"]

    response = await vertex.http.post(
        f"/v1/{endpoint}:undeployModel",
        json={"deployedModelId": "42"},
        headers=await vertex.headers(),
    )

    assert response.status_code == 404


async def test_an_endpoint_with_a_deployed_model_cannot_be_deleted(vertex: VertexEmulator) -> None:
    endpoint = (await succeeded(vertex))["tunedModel"]["endpoint"]

    response = await vertex.http.delete(f"/v1/{endpoint}", headers=await vertex.headers())

    assert response.status_code == 400
    assert error_of(response)["status"] == "FAILED_PRECONDITION"
    assert (await vertex.http.get(f"/v1/{endpoint}", headers=await vertex.headers())).is_success


async def test_read_only_scope_reads_but_does_not_write(vertex: VertexEmulator) -> None:
    job = await succeeded(vertex)
    read_only = await vertex.headers(READ_ONLY)

    created = await vertex.http.post(
        f"/v1/{job['name'].rsplit('/tuningJobs/', 1)[0]}/tuningJobs",
        json=job_body(),
        headers=read_only,
    )
    listed = await vertex.http.get(
        f"/v1/{job['name'].rsplit('/', 2)[0]}/tuningJobs", headers=read_only
    )

    assert created.status_code == 403
    assert listed.status_code == 200
