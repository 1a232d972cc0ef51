"""The upstream items of the fault checklist (shared/reference/reliability.md), for the
Vertex AI provider: team-v's jobs, on real parts, with faults through the emulator's knobs.

Vertex AI names its tuning jobs itself, so exactly-once creation rests on the job's label
(worker/vertex/provider.py): each test counts the emulator's tuning jobs carrying the job's
label, as an operator would list them. Numbers in the test names refer to the checklist.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from google.rpc import code_pb2

from core.errors import LeaseLost
from tests.conftest import SystemFactory
from tests.e2e.test_vertex_tenant import inspect, vertex_fields
from tests.harness import TERMINAL, VERTEX_TENANT, State, System, build_system_steps, token_form
from tuning.v1 import tuning_job_pb2

pytestmark = pytest.mark.timeout(30)

LABEL_KEY = "tuning-platform-job"
"""The label the Vertex provider puts on each tuning job (worker.vertex.provider)."""
STATS_POLL_S = 0.01
"""How often the request counters are read when a test times upstream requests."""
SEEN_WITHIN_S = 0.05
"""A request shows in the counters read that often within this long of its arrival."""


def job_id(job: tuning_job_pb2.TuningJob) -> str:
    return job.name.split("/")[-1]


async def create_vertex(system: System, **fields: Any) -> tuning_job_pb2.TuningJob:
    return await system.create(tenant=VERTEX_TENANT, **vertex_fields(**fields))


async def upstream_jobs(system: System, job: tuning_job_pb2.TuningJob) -> list[dict[str, Any]]:
    """The emulator's tuning jobs that carry `job`'s label."""
    jobs = (await inspect(system, "/_emulator/vertex/tuningJobs"))["tuningJobs"]
    return [j for j in jobs if j.get("labels", {}).get(LABEL_KEY) == job_id(job)]


async def staged_objects(system: System) -> list[dict[str, Any]]:
    objects = (await inspect(system, "/_emulator/storage/objects"))["objects"]
    return [o for o in objects if o["bucket"] == "team-v-tuning"]


async def finish(system: System, job: tuning_job_pb2.TuningJob) -> tuning_job_pb2.TuningJob:
    return await system.finish_training(job.name, tenant=VERTEX_TENANT)


async def wait_for(
    system: System, job: tuning_job_pb2.TuningJob, states: set[int]
) -> tuning_job_pb2.TuningJob:
    return await system.wait_for(job.name, states, tenant=VERTEX_TENANT)


async def test_01_worker_killed_after_the_create_adopts_the_tuning_job(api_only: System) -> None:
    await api_only.inject_faults({"route": "tuningJobs.create", "hold_s": 5})
    worker = await api_only.worker_process(job_lease_s=1.0, claim_lease_s=1.0)
    job = await create_vertex(api_only)

    async def created() -> bool:
        return len(await upstream_jobs(api_only, job)) == 1

    await api_only.eventually(created)
    worker.process.kill()  # SIGKILL: the tuning job exists upstream, our job does not know it
    await worker.stop()
    assert (await api_only.get(job.name, VERTEX_TENANT)).state == State.CREATING
    await api_only.start_worker()
    assert (await finish(api_only, job)).state == State.SUCCEEDED
    assert len(await upstream_jobs(api_only, job)) == 1
    assert await api_only.upstream_requests("tuningJobs.create") == 1  # found by label instead


async def test_03_sigterm_with_creates_in_flight_loses_or_repeats_nothing(
    api_only: System,
) -> None:
    await api_only.inject_faults({"route": "tuningJobs.create", "latency_s": 0.5, "times": 4})
    worker = await api_only.worker_process()
    jobs = [await create_vertex(api_only, display_name=f"job {n}") for n in range(4)]

    async def in_flight() -> bool:
        return await api_only.upstream_requests("tuningJobs.create") > 0

    await api_only.eventually(in_flight)
    assert await worker.stop() == 0  # SIGTERM
    await api_only.start_worker()
    for job in jobs:
        assert (await finish(api_only, job)).state == State.SUCCEEDED
        assert len(await upstream_jobs(api_only, job)) == 1


async def test_04_a_stalled_worker_is_fenced_out_after_a_takeover(api_only: System) -> None:
    job = await create_vertex(api_only)
    acquired = await api_only.store.acquire(VERTEX_TENANT, job_id(job), lease_s=0.2)
    assert acquired is not None
    stale_lease, stale_view = acquired
    await asyncio.sleep(0.3)  # worker A stalls past its lease
    await api_only.start_worker()  # worker B takes the job over
    await wait_for(api_only, job, {State.RUNNING})
    stale_steps = await build_system_steps(api_only)
    with pytest.raises(LeaseLost):
        await stale_steps.advance(stale_lease, stale_view)  # A wakes up and carries on
    assert len(await upstream_jobs(api_only, job)) == 1
    assert (await finish(api_only, job)).state == State.SUCCEEDED
    assert await api_only.upstream_requests("tuningJobs.create") == 1


async def test_08_a_429_on_the_poll_delays_the_next_one_by_its_retry_info(
    system: System,
) -> None:
    retry_delay_s = 2.0
    job = await create_vertex(system)
    await wait_for(system, job, {State.RUNNING})
    await system.stop_worker()  # so that the next poll is the one refused
    await system.inject_faults(
        {"route": "tuningJobs.get", "status": 429, "retry_delay_s": retry_delay_s}
    )
    polls = await system.upstream_requests("tuningJobs.get")
    await system.start_worker()
    refused_at = await when_count_passes(system, "tuningJobs.get", polls)  # the 429
    next_at = await when_count_passes(system, "tuningJobs.get", polls + 1)
    assert next_at - refused_at >= retry_delay_s - SEEN_WITHIN_S
    assert (await system.get(job.name, VERTEX_TENANT)).state == State.RUNNING
    assert (await finish(system, job)).state == State.SUCCEEDED


async def when_count_passes(system: System, route: str, count: int) -> float:
    """The monotonic time when the emulator is first seen to have more than `count`
    requests of `route`."""
    async with asyncio.timeout(10):
        while await system.upstream_requests(route) <= count:  # noqa: ASYNC110 (timing it)
            await asyncio.sleep(STATS_POLL_S)
    return time.monotonic()


async def test_09_503s_on_the_create_are_retried_then_it_succeeds(system: System) -> None:
    await system.inject_faults({"route": "tuningJobs.create", "status": 503, "times": 3})
    job = await create_vertex(system)
    assert (await finish(system, job)).state == State.SUCCEEDED
    assert await system.upstream_requests("tuningJobs.create") == 4
    assert len(await upstream_jobs(system, job)) == 1
    assert len(await staged_objects(system)) == 1  # each retry found its own file staged


async def test_09_503s_past_the_retry_budget_fail_the_job_without_a_tight_loop(
    make_system: SystemFactory,
) -> None:
    budget_s = 1.0
    async with make_system(retry_budget_s=budget_s, max_step_attempts=1000) as s:
        await s.inject_faults({"route": "tuningJobs.create", "status": 503, "times": 10_000})
        started = time.monotonic()
        job = await create_vertex(s)
        failed = await wait_for(s, job, {State.FAILED})
        assert time.monotonic() - started >= budget_s
        assert failed.error.code == code_pb2.UNAVAILABLE
        assert "gave up after" in failed.error.message
        assert "The service is currently unavailable." in failed.error.message
        # A tight loop would send hundreds in the budget; the backoff sends a handful.
        assert await s.upstream_requests("tuningJobs.create") < 50
        assert await upstream_jobs(s, job) == []


@pytest.mark.parametrize(
    "lost",
    [{"drop": True}, {"status": 503, "after": True}],
    ids=["connection-dropped", "answered-503"],
)
async def test_10_a_create_whose_answer_is_lost_is_adopted(
    system: System, lost: dict[str, Any]
) -> None:
    await system.inject_faults({"route": "tuningJobs.create", **lost})
    job = await create_vertex(system)
    assert (await finish(system, job)).state == State.SUCCEEDED
    assert len(await upstream_jobs(system, job)) == 1
    assert await system.upstream_requests("tuningJobs.create") == 1


async def test_10_a_staged_upload_whose_answer_is_lost_is_accepted_on_retry(
    system: System,
) -> None:
    await system.inject_faults({"route": "storage.objects.insert", "drop": True})
    job = await create_vertex(system)
    assert (await finish(system, job)).state == State.SUCCEEDED
    # The retry's create-only upload met 412, and the object there had its checksum.
    assert await system.upstream_requests("storage.objects.insert") == 2
    assert len(await staged_objects(system)) == 1
    assert len(await upstream_jobs(system, job)) == 1


async def test_11_a_cancel_racing_completion_ends_as_vertex_says(system: System) -> None:
    job = await create_vertex(system)
    await wait_for(system, job, {State.RUNNING})
    await system.stop_worker()
    system.clock.advance(3600)  # training finished upstream; nobody has looked yet
    assert (await system.cancel(job.name, VERTEX_TENANT)).state == State.CANCELLING
    assert (await system.cancel(job.name, VERTEX_TENANT)).state == State.CANCELLING
    await system.start_worker()
    done = await wait_for(system, job, set(TERMINAL))
    [upstream] = await upstream_jobs(system, job)
    assert upstream["state"] == "JOB_STATE_SUCCEEDED"
    assert done.state == State.SUCCEEDED
    assert await system.upstream_requests("tuningJobs.cancel") == 0  # it had ended: no cancel
    assert (await vertex_get(system, done.tuned_model)).status_code == 200  # the model is kept


async def test_11_a_cancel_while_vertex_trains_ends_cancelled_as_vertex_does(
    system: System,
) -> None:
    job = await create_vertex(system)
    await wait_for(system, job, {State.RUNNING})
    assert (await system.cancel(job.name, VERTEX_TENANT)).state == State.CANCELLING
    assert (await system.cancel(job.name, VERTEX_TENANT)).state == State.CANCELLING

    async def asked() -> bool:
        [upstream] = await upstream_jobs(system, job)
        return bool(upstream["state"] == "JOB_STATE_CANCELLING")

    await system.eventually(asked)
    polls = await system.upstream_requests("tuningJobs.get")

    async def looked_again() -> bool:  # the worker sees it cancelling, more than once
        return await system.upstream_requests("tuningJobs.get") >= polls + 3

    await system.eventually(looked_again)
    system.clock.advance(60)  # Vertex takes a while to stop it
    done = await wait_for(system, job, set(TERMINAL))
    [upstream] = await upstream_jobs(system, job)
    assert (done.state, upstream["state"]) == (State.CANCELLED, "JOB_STATE_CANCELLED")
    assert await system.upstream_requests("tuningJobs.cancel") == 1


async def test_13_a_repeated_request_id_gives_the_same_job_and_one_tuning_job(
    system: System,
) -> None:
    first = await system.create(VERTEX_TENANT, request_id="once", **vertex_fields())
    again = await system.create(VERTEX_TENANT, request_id="once", **vertex_fields())
    assert again.name == first.name
    assert (await finish(system, first)).state == State.SUCCEEDED
    assert len(await upstream_jobs(system, first)) == 1
    assert len((await inspect(system, "/_emulator/vertex/tuningJobs"))["tuningJobs"]) == 1


async def test_14_a_401_on_the_poll_earns_one_token_refresh_and_one_retry(
    system: System,
) -> None:
    job = await create_vertex(system)
    await wait_for(system, job, {State.RUNNING})
    tokens = await system.upstream_requests("oauth.token")  # long-lived: no refresh due
    await system.inject_faults({"route": "tuningJobs.get", "status": 401})
    assert (await finish(system, job)).state == State.SUCCEEDED
    assert await system.upstream_requests("oauth.token") == tokens + 1


async def test_14_a_refused_grant_fails_the_job_once_and_touches_nothing_upstream(
    system: System, tmp_path: Path
) -> None:
    credentials = tmp_path / f"{VERTEX_TENANT}-oauth.json"
    info = json.loads(credentials.read_text())
    credentials.write_text(json.dumps(info | {"refresh_token": "rt-no-longer-granted-5678"}))
    job = await create_vertex(system)
    failed = await wait_for(system, job, {State.FAILED})
    assert "invalid_grant" in failed.error.message
    assert "rt-no-longer-granted-5678" not in failed.error.message
    assert await system.upstream_requests("oauth.token") == 1
    assert await system.upstream_requests("storage.objects.insert") == 0
    assert await system.upstream_requests("tuningJobs.create") == 0


async def test_15_a_job_vertex_refuses_fails_once_and_the_others_flow(system: System) -> None:
    refusal = "The adapter size is not supported for this base model."
    await system.inject_faults({"route": "tuningJobs.create", "status": 400, "message": refusal})
    refused = await create_vertex(system, display_name="refused")
    failed = await wait_for(system, refused, {State.FAILED})
    assert failed.error.code == code_pb2.INVALID_ARGUMENT
    assert refusal in failed.error.message
    good = await create_vertex(system, display_name="good")
    assert (await finish(system, good)).state == State.SUCCEEDED
    assert await system.upstream_requests("tuningJobs.create") == 2  # one each: no retry
    assert await upstream_jobs(system, refused) == []
    staged = [o["name"] for o in await staged_objects(system)]
    assert [name for name in staged if job_id(refused) in name] == []  # unstaged
    assert (await system.get(refused.name, VERTEX_TENANT)).state == State.FAILED


async def test_a_tuning_job_failed_after_its_upload_leaves_no_model_once_deleted(
    system: System,
) -> None:
    await system.inject_faults(
        {"route": "tuningJobs.create", "training": {"fail_creating_endpoint": True}}
    )
    job = await create_vertex(system)
    done = await finish(system, job)
    assert done.state == State.FAILED
    assert done.error.code == code_pb2.INTERNAL
    assert "Failed to create endpoint" in done.error.message
    [upstream] = await upstream_jobs(system, job)
    model = (await vertex_get(system, upstream["name"])).json()["tunedModel"]["model"]
    assert (await vertex_get(system, model)).status_code == 200
    await system.delete(job.name, VERTEX_TENANT)

    async def cleaned_up() -> bool:
        gone = (await vertex_get(system, model)).status_code == 404
        return gone and not await staged_objects(system)

    await system.eventually(cleaned_up)


async def vertex_get(system: System, name: str) -> httpx.Response:
    """GET a Vertex AI resource by its name with team-v's grant, as its owner sees it."""
    async with httpx.AsyncClient(base_url=system.emulator_url) as http:
        token = await http.post("/token", data=token_form(system.tenants[VERTEX_TENANT]))
        headers = {"authorization": f"Bearer {token.json()['access_token']}"}
        return await http.get(f"/v1/{quote(name, safe='/@')}", headers=headers)
