"""A job's training examples live exactly as long as the job, whichever path ends it.

A job's inline examples (`Keys.job_data`) are its recipe (RetuneTuningJob makes a new job
from them): they stay when the upstream has them and when the job finishes, and are
dropped, their bytes given back to the tenant's storage, only by the script that deletes
the job (SAVE of a deleted job) or removes it (REMOVE, by retention). These tests take
each way a job ends, through the API where a caller ends it and through a worker where
the worker does, and look in Redis afterwards (docs/architecture.md, decision 27).
"""

from __future__ import annotations

import time

import pytest
from google.rpc import code_pb2

from core.domain.job import Job
from core.domain.states import JobState
from core.redis.client import Redis
from core.redis.job_store import JobStore, Lease
from core.redis.keys import Keys
from core.redis.storage import TenantStorage
from tests.conftest import SystemFactory
from tests.harness import TERMINAL, State, System
from worker.retention import Retention

EXAMPLES = b'[["1","2"],["3","4"]]'


async def data_keys(redis: Redis, prefix: str) -> list[bytes]:
    """Every examples key under `prefix`, of any tenant."""
    return [k async for k in redis.scan_iter(match=f"{prefix}:*:data:*")]


async def job_keys(system: System, job_id: str) -> list[bytes]:
    """Every key of this test that names the job."""
    return [k for k in await system.keys() if job_id.encode() in k]


async def stored_bytes(redis: Redis, prefix: str, tenant: str = "team-a") -> int:
    return (await TenantStorage(redis, Keys(prefix)).usage(tenant)).stored_bytes


def job_id_of(name: str) -> str:
    return name.rsplit("/", maxsplit=1)[-1]


# The script, through the job store.


@pytest.fixture
def store(redis: Redis, prefix: str) -> JobStore:
    return JobStore(redis, Keys(prefix))


def queued_job() -> Job:
    return Job(id="j1", tenant="team-a", base_model="models/x", request_hash="h1")


ENDINGS = {
    "cancelled": {"state": JobState.CANCELLED},
    "failed": {"state": JobState.FAILED},
    "succeeded": {"state": JobState.SUCCEEDED},
}


async def _save_as(store: JobStore, by_worker: bool, **ending: object) -> None:
    """Save j1 with `ending`, as the API writes (no lease) or as a worker does."""
    lease: Lease | None = None
    if by_worker:
        acquired = await store.acquire("team-a", "j1", lease_s=5)
        assert acquired is not None
        lease = acquired[0]
    current = await store.read("team-a", "j1")
    assert current is not None
    await store.save(current, current.job.replace(**ending), lease=lease)


@pytest.mark.parametrize("by_worker", [False, True], ids=["api", "worker"])
async def test_the_save_that_deletes_a_job_drops_its_examples_and_their_bytes(
    store: JobStore, redis: Redis, prefix: str, by_worker: bool
) -> None:
    await store.create(queued_job(), EXAMPLES)
    assert await stored_bytes(redis, prefix) == len(EXAMPLES)
    await _save_as(store, by_worker, deleted=True)
    assert await data_keys(redis, prefix) == []
    assert await stored_bytes(redis, prefix) == 0


@pytest.mark.parametrize("by_worker", [False, True], ids=["api", "worker"])
@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
async def test_the_save_that_finishes_a_job_keeps_its_examples_as_its_recipe(
    store: JobStore, redis: Redis, prefix: str, ending: dict[str, object], by_worker: bool
) -> None:
    await store.create(queued_job(), EXAMPLES)
    await _save_as(store, by_worker, **ending)
    assert await store.examples("team-a", "j1") == EXAMPLES
    assert await stored_bytes(redis, prefix) == len(EXAMPLES)
    await _save_as(store, by_worker=False, deleted=True)  # until the API deletes it
    assert await data_keys(redis, prefix) == []
    assert await stored_bytes(redis, prefix) == 0


async def test_a_save_that_does_not_end_the_job_keeps_its_examples(
    store: JobStore, redis: Redis, prefix: str
) -> None:
    await store.create(queued_job(), EXAMPLES)
    current = await store.read("team-a", "j1")
    assert current is not None
    await store.save(current, current.job.replace(state=JobState.CREATING))
    assert await store.examples("team-a", "j1") == EXAMPLES
    assert await stored_bytes(redis, prefix) == len(EXAMPLES)


# Every path, through the API and a worker.


async def test_a_job_cancelled_while_queued_keeps_its_examples_until_deleted(
    api_only: System,
) -> None:
    prefix = api_only.settings.redis_key_prefix
    job = await api_only.create()
    assert len(await data_keys(api_only.redis, prefix)) == 1
    size = await stored_bytes(api_only.redis, prefix)
    assert (await api_only.cancel(job.name)).state == State.CANCELLED
    assert len(await data_keys(api_only.redis, prefix)) == 1
    assert await stored_bytes(api_only.redis, prefix) == size
    await api_only.delete(job.name)
    assert await data_keys(api_only.redis, prefix) == []
    assert await stored_bytes(api_only.redis, prefix) == 0


async def test_a_job_deleted_while_queued_drops_its_examples_then_its_record(
    api_only: System,
) -> None:
    prefix = api_only.settings.redis_key_prefix
    job = await api_only.create()
    await api_only.delete(job.name)
    assert await data_keys(api_only.redis, prefix) == []
    assert await stored_bytes(api_only.redis, prefix) == 0
    await api_only.start_worker()

    async def record_gone() -> bool:
        return await job_keys(api_only, job_id_of(job.name)) == []

    await api_only.eventually(record_gone)


async def test_a_job_dead_lettered_before_submission_keeps_its_examples_until_deleted(
    make_system: SystemFactory,
) -> None:
    async with make_system(max_step_attempts=2) as system:
        prefix = system.settings.redis_key_prefix
        await system.inject_faults({"route": "tunedModels.create", "status": 503, "times": 100})
        job = await system.create()
        failed = await system.wait_for(job.name, {State.FAILED})
        assert "gave up after 2 failed attempts" in failed.error.message
        assert len(await data_keys(system.redis, prefix)) == 1  # a FAILED job's recipe
        await system.delete(job.name)
        assert await data_keys(system.redis, prefix) == []
        assert await stored_bytes(system.redis, prefix) == 0


async def test_a_job_whose_examples_vanished_fails_as_data_lost_and_leaves_none(
    api_only: System,
) -> None:
    prefix = api_only.settings.redis_key_prefix
    job = await api_only.create()
    [key] = await data_keys(api_only.redis, prefix)
    await api_only.redis.delete(key)  # lost outside the scripts, as by an operator's DEL
    await api_only.start_worker()
    failed = await api_only.wait_for(job.name, {State.FAILED})
    assert failed.error.code == code_pb2.DATA_LOSS
    assert await data_keys(api_only.redis, prefix) == []


async def test_retention_removes_a_job_ended_before_submission_without_a_trace(
    api_only: System,
) -> None:
    prefix = api_only.settings.redis_key_prefix
    job = await api_only.create()
    await api_only.cancel(job.name)
    keys = Keys(prefix)
    retention = Retention(
        JobStore(api_only.redis, keys),
        TenantStorage(api_only.redis, keys),
        lambda: time.time() + 3600,  # the API stamps the end by the system clock
        job_retention_s=60,
        dataset_retention_s=0,
    )
    assert (await retention.prune("team-a")).jobs == 1
    assert await job_keys(api_only, job_id_of(job.name)) == []
    assert await stored_bytes(api_only.redis, prefix) == 0


async def test_submitted_and_cancelled_jobs_keep_their_examples_until_deleted(
    system: System,
) -> None:
    prefix = system.settings.redis_key_prefix
    finished = await system.create(display_name="finished")
    size = await stored_bytes(system.redis, prefix)
    # Each cancel lands before, during or after its job's submission, as the worker goes.
    cancelled = [await system.create(display_name=f"cancelled {n}") for n in range(5)]
    for job in cancelled:
        await system.cancel(job.name)
    assert (await system.finish_training(finished.name)).state == State.SUCCEEDED
    for job in cancelled:  # the clock jump may finish one upstream before its cancel does
        await system.wait_for(job.name, TERMINAL)
    assert len(await data_keys(system.redis, prefix)) == 6
    assert await stored_bytes(system.redis, prefix) == 6 * size
    for job in [finished, *cancelled]:
        await system.delete(job.name)
    assert await data_keys(system.redis, prefix) == []
    assert await stored_bytes(system.redis, prefix) == 0
