"""Upstream concurrency quotas: a Vertex AI project runs at most its limit of tuning jobs
at once, shared by the tenants tuning in it; the others wait QUEUED, visibly, in the
project's line, and a tenant with quota pools has its job placed on one with room."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import httpx
import pytest

from core.domain import lifecycle
from core.domain.job import new_job_id
from core.errors import JobError, Reason
from core.redis.keys import Keys
from core.redis.project_slots import ProjectSlots
from core.security.authorized_user import CLOUD_PLATFORM_SCOPE
from core.security.tenants import TenantDirectory
from core.upstream_http import open_session
from devstack.tenants import LocalTenant, tenants_entry, write_atomically
from tests.e2e.test_reliability_vertex import finish, upstream_jobs, wait_for
from tests.e2e.test_vertex_tenant import vertex_fields
from tests.harness import VERTEX_PROVIDER, VERTEX_TENANT, State, System
from tuning.v1 import tuning_job_pb2
from worker.process import WorkerWiring, build_reconciler
from worker.reconciler import Outcome

pytestmark = pytest.mark.timeout(30)

NEIGHBOUR = "team-w"
"""A second tenant tuning in team-v's project (with team-v's OAuth grant)."""
PROJECT = VERTEX_PROVIDER["project"]
POOL = "team-v-pool-two"
RELOAD_WAIT_S = 5.0


async def share_project(system: System, limits: dict[str, int], **team_v: Any) -> None:
    """Rewrite the tenants file: `limits` per project, team-v's provider with `team_v`
    added (pools), and the neighbour in team-v's project; wait until the API follows."""
    neighbour = LocalTenant(NEIGHBOUR, scopes=(CLOUD_PLATFORM_SCOPE,), provider=VERTEX_PROVIDER)
    system.tenants[NEIGHBOUR] = neighbour
    content = json.loads(system.tenants_file.read_text())
    for entry in content["tenants"]:
        if entry["id"] == VERTEX_TENANT:
            entry["provider"] = {**VERTEX_PROVIDER, **team_v}
    entry = {**tenants_entry(neighbour), "credentials_file": f"{VERTEX_TENANT}-oauth.json"}
    content["tenants"].append(entry)
    content["upstream_projects"] = {p: {"max_running_jobs": n} for p, n in limits.items()}
    write_atomically(system.tenants_file, json.dumps(content))

    async def followed() -> bool:
        return len((await system.list_jobs(NEIGHBOUR)).tuning_jobs) == 0

    await system.eventually(_answers(followed), timeout_s=RELOAD_WAIT_S)


def _answers(check: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """`check`, False while it raises (the API does not know the neighbour yet)."""

    async def answered() -> bool:
        try:
            return await check()
        except grpc.aio.AioRpcError as exc:  # until the API reads the file again
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
            return False

    return answered


async def create(system: System, tenant: str, **fields: Any) -> tuning_job_pb2.TuningJob:
    return await system.create(tenant=tenant, **vertex_fields(**fields))


async def test_a_second_tenants_job_waits_for_the_projects_only_slot(api_only: System) -> None:
    await share_project(api_only, {PROJECT: 1})
    await api_only.start_worker()
    first = await create(api_only, VERTEX_TENANT)
    await wait_for(api_only, first, {State.RUNNING})
    second = await create(api_only, NEIGHBOUR)
    await api_only.eventually(lambda: _in_line_at(api_only, second, NEIGHBOUR, 1))
    seen = await api_only.get(second.name, NEIGHBOUR)
    assert seen.state == State.QUEUED
    assert seen.waiting_reason.startswith(f"WAITING_FOR_QUOTA: Vertex AI project {PROJECT} ")
    assert await upstream_jobs(api_only, second) == []

    assert (await finish(api_only, first)).state == State.SUCCEEDED
    done = await api_only.finish_training(second.name, tenant=NEIGHBOUR)
    assert done.state == State.SUCCEEDED
    assert (done.waiting_reason, done.queue_position) == ("", 0)
    assert [j["project"] for j in await upstream_jobs(api_only, second)] == [PROJECT]


async def running_on_main_and_pool(
    system: System,
) -> tuple[tuning_job_pb2.TuningJob, tuning_job_pb2.TuningJob]:
    """team-v with one pool, each project limited to 1, and two of its jobs RUNNING: the
    first in the main project, the second (no slot left there) in the pool."""
    pool = {"project": POOL, "location": "us-central1", "staging": "gs://team-v-tuning/pool"}
    await share_project(system, {PROJECT: 1, POOL: 1}, pools=[pool])
    await system.start_worker()
    first = await create(system, VERTEX_TENANT, display_name="first")
    await wait_for(system, first, {State.RUNNING})
    second = await create(system, VERTEX_TENANT, display_name="second")
    await wait_for(system, second, {State.RUNNING})
    return first, second


async def test_a_job_is_placed_on_a_pool_with_room_and_stays_there(api_only: System) -> None:
    first, second = await running_on_main_and_pool(api_only)
    third = await create(api_only, NEIGHBOUR, display_name="third")
    # The neighbour has no pools: it waits for the main project.
    await api_only.eventually(lambda: _in_line_at(api_only, third, NEIGHBOUR, 1))

    assert (await finish(api_only, first)).state == State.SUCCEEDED
    assert (await finish(api_only, second)).state == State.SUCCEEDED
    assert [j["project"] for j in await upstream_jobs(api_only, first)] == [PROJECT]
    assert [j["project"] for j in await upstream_jobs(api_only, second)] == [POOL]
    done = await api_only.finish_training(third.name, tenant=NEIGHBOUR)
    assert done.state == State.SUCCEEDED


async def test_a_slot_left_held_by_a_job_that_is_gone_is_given_back(api_only: System) -> None:
    await share_project(api_only, {PROJECT: 1})
    keys = Keys(api_only.settings.redis_key_prefix)
    slots = ProjectSlots(api_only.redis, keys, lambda _project: 1)
    leaked = f"{VERTEX_TENANT}/{new_job_id(VERTEX_TENANT, 'crashed')}"
    assert (await slots.take(PROJECT, leaked)).granted  # its worker died before giving it back
    job = await create(api_only, VERTEX_TENANT)
    await api_only.start_worker()  # a worker sweeps when it starts
    await wait_for(api_only, job, {State.RUNNING})
    assert await slots.holders(PROJECT) == [f"{VERTEX_TENANT}/{job.name.split('/')[-1]}"]


async def test_a_job_cancelled_while_in_line_passes_the_freed_slot_on(api_only: System) -> None:
    await share_project(api_only, {PROJECT: 1})
    await api_only.start_worker()
    first = await create(api_only, VERTEX_TENANT, display_name="first")
    await wait_for(api_only, first, {State.RUNNING})
    second = await create(api_only, NEIGHBOUR, display_name="second")

    await api_only.eventually(lambda: _in_line_at(api_only, second, NEIGHBOUR, 1))
    third = await create(api_only, VERTEX_TENANT, display_name="third")
    await api_only.eventually(lambda: _in_line_at(api_only, third, VERTEX_TENANT, 2))
    assert (await api_only.cancel(second.name, NEIGHBOUR)).state == State.CANCELLED
    # The cancelled job's place is given back at once: the third moves up.
    await api_only.eventually(lambda: _in_line_at(api_only, third, VERTEX_TENANT, 1))

    assert (await finish(api_only, first)).state == State.SUCCEEDED
    assert (await finish(api_only, third)).state == State.SUCCEEDED  # not after a sweep


async def _in_line_at(
    system: System, job: tuning_job_pb2.TuningJob, tenant: str, place: int
) -> bool:
    """Whether `job` waits for its project's quota at `place` in the project's line."""
    seen = await system.get(job.name, tenant)
    return bool(seen.waiting_reason) and seen.queue_position == place


async def test_the_reconciler_looks_in_a_tenants_pools_too(api_only: System) -> None:
    _, second = await running_on_main_and_pool(api_only)
    assert [j["project"] for j in await upstream_jobs(api_only, second)] == [POOL]
    # Only the reconciler may act on the leftover: a running worker would race it to
    # the failed job's upstream cleanup.
    await api_only.stop_worker()
    # The job fails here while its tuning job in the pool runs on: a leftover.
    error = JobError.of(Reason.DEAD_LETTERED, "failed for the test")
    tenant, job_id = VERTEX_TENANT, second.name.split("/")[-1]
    ended_s = api_only.clock()
    await api_only.store.update(tenant, job_id, lambda j: lifecycle.failed(j, error, ended_s))
    # Past the grace after both the failure and the tuning job's own end upstream.
    api_only.clock.advance(3600)
    api_only.clock.advance(api_only.settings.reconcile_grace_s + 60)

    async with open_session(timeout_s=10.0) as http:
        with httpx.Client(timeout=10.0) as token_http:
            tenants = TenantDirectory.watch(api_only.tenants_file)
            wiring = WorkerWiring(
                api_only.settings, api_only.redis, tenants, http, token_http, clock=api_only.clock
            )
            report = await build_reconciler(wiring).reconcile_once()
    # The pool's leftover goes; the first job, listed by both tenants of its project, is
    # kept by its own tenant's pass and left alone by the neighbour's.
    assert report.outcomes[Outcome.DELETED] == 1
    assert report.outcomes[Outcome.KEPT_OTHER_TENANT] == 1
    (left,) = await upstream_jobs(api_only, second)
    assert left["state"] in {"JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED", "JOB_STATE_SUCCEEDED"}
