"""GetTuningJob from each replica's near cache: hot reads stay in process, and a worker's
write is visible through every replica within the stated bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, TypeAlias

import grpc
import pytest

from core.domain.job import Job, Progress
from core.domain.states import JobState
from core.redis.client import Redis
from core.redis.keys import Keys
from core.security.tenants import TenantDirectory
from service.near_cache import NearCache
from service.process import start_api
from service.status import CachedStatus
from tests.harness import System
from tuning.v1 import tuning_job_pb2, tuning_service_pb2, tuning_service_pb2_grpc

REPLICAS = 3
CHANGES = 15

if TYPE_CHECKING:
    Stub: TypeAlias = tuning_service_pb2_grpc.TuningServiceAsyncStub
    Replica: TypeAlias = tuple[Stub, NearCache[CachedStatus]]


@pytest.fixture
async def replicas(api_only: System) -> AsyncIterator[list[Replica]]:
    """The system's API and two more replicas on the same Redis."""
    assert api_only.api.status_cache is not None
    found = [(api_only.stub, api_only.api.status_cache)]
    async with AsyncExitStack() as stack:
        for _ in range(REPLICAS - 1):
            tenants = TenantDirectory.watch(api_only.tenants_file)
            api = await start_api(api_only.settings, api_only.redis, tenants, listen="127.0.0.1:0")
            stack.push_async_callback(api.stop, 1.0)
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{api.port}")
            stack.push_async_callback(channel.close)
            assert api.status_cache is not None
            found.append((tuning_service_pb2_grpc.TuningServiceStub(channel), api.status_cache))
        yield found


async def commands(redis: Redis, name: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))


async def get(stub: Stub, system: System, name: str) -> tuning_job_pb2.TuningJob:
    return await stub.GetTuningJob(
        tuning_service_pb2.GetTuningJobRequest(name=name), metadata=system.auth()
    )


def running(step: int) -> Callable[[Job], Job]:
    def change(job: Job) -> Job:
        return job.replace(
            state=JobState.RUNNING, progress=Progress(completed_steps=step, total_steps=100)
        )

    return change


async def warm(replicas: list[Replica], system: System, name: str) -> str:
    """Read through every replica until each holds the job; the job's cache key."""
    key = Keys(system.settings.redis_key_prefix).job("team-a", name.removeprefix("tuningJobs/"))
    deadline = time.monotonic() + 5.0
    for stub, cache in replicas:
        while cache.lookup(key) is None:
            assert time.monotonic() < deadline, "the cache never held the job"
            await get(stub, system, name)
    return key


async def test_hot_reads_never_leave_the_process(replicas: list[Replica], api_only: System) -> None:
    job = await api_only.create()
    await api_only.store.update("team-a", job.name.removeprefix("tuningJobs/"), running(1))
    await warm(replicas, api_only, job.name)
    before = await commands(api_only.redis, "hmget")

    answers = [await get(stub, api_only, job.name) for _ in range(50) for stub, _ in replicas]

    assert await commands(api_only.redis, "hmget") == before
    assert {a.progress.completed_steps for a in answers} == {1}
    assert {a.state for a in answers} == {tuning_job_pb2.TuningJob.RUNNING}


async def test_a_workers_write_is_seen_by_every_replica_within_the_bound(
    replicas: list[Replica], api_only: System
) -> None:
    """The bound is `status_cache_max_stale_s` (1 s); normally it is a few milliseconds."""
    bound_s = api_only.settings.status_cache_max_stale_s
    job = await api_only.create()
    job_id = job.name.removeprefix("tuningJobs/")
    await api_only.store.update("team-a", job_id, running(0))
    delays = []
    for step in range(1, CHANGES + 1):
        await warm(replicas, api_only, job.name)
        written = time.monotonic()
        await api_only.store.update("team-a", job_id, running(step))
        seen = await asyncio.gather(
            *(seen_at(stub, api_only, job.name, step, bound_s) for stub, _ in replicas)
        )
        delays += [at - written for at in seen]
    assert max(delays) <= bound_s, f"slowest replica saw the change after {max(delays):.3f}s"


async def seen_at(stub: Stub, system: System, name: str, step: int, bound_s: float) -> float:
    """When the replica behind `stub` first answers `step`."""
    deadline = time.monotonic() + bound_s * 2
    while (await get(stub, system, name)).progress.completed_steps != step:
        assert time.monotonic() < deadline, f"step {step} not seen"
    return time.monotonic()
