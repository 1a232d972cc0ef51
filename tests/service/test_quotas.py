"""Per-tenant quotas and fairness: running jobs, create rate, one job per tenant per round."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from google.rpc import error_details_pb2

from core.domain.job import Job, encode_examples
from core.domain.quotas import TenantQuotas
from core.redis.admission import Admission
from core.redis.client import Redis
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.schedule import Schedule
from devstack.tenants import write_tenant_files
from tests.conftest import SystemFactory
from tests.harness import State, System, examples
from tests.rpc_errors import detail, reason


async def test_jobs_beyond_the_running_quota_wait_with_their_queue_position(
    make_system: SystemFactory,
) -> None:
    async with make_system(tenant_max_running=2) as system:
        jobs = [await system.create(display_name=f"job {n}") for n in range(5)]
        for job in jobs[:2]:
            await system.wait_for(job.name, {State.RUNNING})
        waiting = [await system.get(job.name) for job in jobs[2:]]
        assert [j.state for j in waiting] == [State.QUEUED] * 3
        assert [j.queue_position for j in waiting] == [1, 2, 3]
        listed = {j.name: j.queue_position for j in (await system.list_jobs()).tuning_jobs}
        assert listed[jobs[4].name] == 3
        await system.finish_training(jobs[0].name)  # both running jobs end upstream
        for job in jobs[2:4]:
            await system.wait_for(job.name, {State.RUNNING})
        assert (await system.get(jobs[4].name)).queue_position == 1


async def test_the_create_rate_is_limited_per_tenant_with_retry_info_and_quota_failure(
    make_system: SystemFactory,
) -> None:
    async with make_system(
        with_worker=False, tenant_creates_per_minute=6, tenant_create_burst=2
    ) as system:
        for _ in range(2):
            await system.create()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.create(display_name="one too many")
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason(caught.value) == "CREATE_RATE_EXCEEDED"
        assert detail(caught.value, error_details_pb2.RetryInfo).retry_delay.seconds >= 9
        failure = detail(caught.value, error_details_pb2.QuotaFailure)
        assert failure.violations[0].subject == "tenant:team-a"
        assert len((await system.list_jobs()).tuning_jobs) == 2  # nothing stored for it
        await system.create("team-b")  # another tenant is not affected


async def test_a_retry_of_a_create_that_made_its_job_spends_no_quota(
    make_system: SystemFactory,
) -> None:
    from tests.harness import job_spec
    from tuning.v1 import tuning_service_pb2

    async with make_system(
        with_worker=False, tenant_creates_per_minute=1, tenant_create_burst=1
    ) as system:
        request = tuning_service_pb2.CreateTuningJobRequest(
            tuning_job=job_spec(), request_id="retried-3-times"
        )
        answers = [
            await system.stub.CreateTuningJob(request, metadata=system.auth()) for _ in range(4)
        ]
        assert len({a.name for a in answers}) == 1
        assert {a.queue_position for a in answers} == {1}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.create(display_name="a new job")  # the one token went on the first
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_validate_only_checks_the_quota_without_spending_it(
    make_system: SystemFactory,
) -> None:
    from tests.harness import job_spec
    from tuning.v1 import tuning_service_pb2

    async with make_system(
        with_worker=False, tenant_creates_per_minute=1, tenant_create_burst=1
    ) as system:
        dry_run = tuning_service_pb2.CreateTuningJobRequest(
            tuning_job=job_spec(), validate_only=True
        )
        for _ in range(3):
            await system.stub.CreateTuningJob(dry_run, metadata=system.auth())
        await system.create()  # the one real create still has its token
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.stub.CreateTuningJob(dry_run, metadata=system.auth())
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def admission_on(redis: Redis, prefix: str) -> tuple[JobStore, Schedule, Admission]:
    """A job store, the schedule and admission, for tenants running up to 10,000 jobs."""
    keys = Keys(prefix)
    schedule = Schedule(redis, keys)
    quotas = TenantQuotas(10_000, 60, 20)
    return JobStore(redis, keys), schedule, Admission(redis, keys, schedule, lambda _: quotas)


async def test_a_flood_does_not_delay_another_tenants_job_past_one_round(
    redis: Redis, prefix: str
) -> None:
    store, schedule, admission = admission_on(redis, prefix)
    content = encode_examples([])
    for n in range(1000):
        await store.create(Job(id=f"a{n:04d}", tenant="team-a", base_model="m"), content)
    await admission.add_to_ring("team-a")
    await admission.round()  # team-a is being served
    await store.create(Job(id="b0001", tenant="team-b", base_model="m"), content)
    await admission.add_to_ring("team-b")
    await admission.round()  # the very next round serves team-b's single job
    admitted = {c.job_id for c in await schedule.claim(5000, lease_s=60)}
    assert "b0001" in admitted
    assert len(admitted) == 3  # a0000, a0001 and b0001: one per tenant per round
    assert await admission.position("team-a", "a0002") == 1


async def test_free_slots_are_filled_at_once_round_robin_across_tenants(
    redis: Redis, prefix: str
) -> None:
    store, schedule, admission = admission_on(redis, prefix)
    content = encode_examples([])
    for n in range(300):
        await store.create(Job(id=f"a{n:04d}", tenant="team-a", base_model="m"), content)
    await store.create(Job(id="b0001", tenant="team-b", base_model="m"), content)
    for tenant in ("team-a", "team-b"):
        await admission.add_to_ring(tenant)

    assert await admission.admit(200) == 200  # one call fills 200 free slots
    admitted = {c.job_id for c in await schedule.claim(5000, lease_s=60)}
    assert "b0001" in admitted  # team-b's one job came in the first round
    assert len(admitted) == 200
    assert await admission.position("team-a", "a0199") == 1
    assert await admission.admit(1000) == 101  # the rest; then nothing is queued


async def test_a_single_job_starts_while_another_tenants_flood_waits(
    make_system: SystemFactory,
) -> None:
    async with make_system(
        with_worker=False,
        tenant_max_running=1000,
        tenant_creates_per_minute=10_000,
        tenant_create_burst=1000,
        upstream_rps=0,  # no budget: a create refused for a token would free its slot
    ) as system:
        # Each create takes the upstream 0.5 s (every one: a rule applies to `times`
        # requests), so the worker's 32 slots stay busy and admission fills the freed ones
        # only; the flood waits in its tenant's queue. Fair admission takes team-b's job in
        # the second round, so it runs after two or three rounds (64-96 flood jobs out of
        # the queue); first come, first served would run it after all of them.
        flood = 200
        await system.inject_faults(
            {"route": "tunedModels.create", "latency_s": 0.5, "times": flood + 1}
        )
        for n in range(flood):
            await system.create(display_name=f"flood {n}", training_examples=examples(20))
        await system.start_worker()
        mine = await system.create("team-b", display_name="just one")
        await system.wait_for(mine.name, {State.RUNNING}, tenant="team-b", timeout_s=30)
        still_queued = await count_queued(system)
        assert still_queued >= flood // 3, "team-b waited for most of team-a's flood"


async def count_queued(system: System) -> int:
    """How many of team-a's jobs are still QUEUED, over every page of the list."""
    count, token = 0, ""
    while True:
        page = await system.list_jobs(page_size=200, page_token=token)
        count += sum(1 for j in page.tuning_jobs if j.state == State.QUEUED)
        if not (token := page.next_page_token):
            return count


async def test_a_tenants_own_quota_comes_from_the_tenants_file_without_restart(
    make_system: SystemFactory,
) -> None:
    async with make_system(tenant_max_running=10) as system:
        tenants = dict(system.tenants)
        tenants["team-a"] = dataclasses.replace(tenants["team-a"], quotas={"max_running": 1})
        write_tenant_files(system.tenants_file.parent, list(tenants.values()))
        await asyncio.sleep(1.1)  # the file is looked at again at most once a second
        jobs = [await system.create(display_name=f"job {n}") for n in range(3)]
        others = [await system.create("team-b", display_name=f"b {n}") for n in range(3)]
        await system.wait_for(jobs[0].name, {State.RUNNING})
        for job in others:  # team-b keeps the default of 10
            await system.wait_for(job.name, {State.RUNNING}, tenant="team-b")
        assert [(await system.get(j.name)).queue_position for j in jobs[1:]] == [1, 2]
