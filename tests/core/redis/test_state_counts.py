"""Per-state job counts and the fetched set, kept by the CREATE, SAVE and REMOVE scripts."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from core.domain.job import Job
from core.domain.states import JobState
from core.errors import Conflict
from core.redis.client import Redis
from core.redis.job_store import JobStore
from core.redis.keys import Keys

TENANT = "team-a"


def new_job(job_id: str) -> Job:
    return Job(id=job_id, tenant=TENANT, base_model="models/x", request_hash="h")


@pytest.fixture
def store(redis: Redis, prefix: str) -> JobStore:
    return JobStore(redis, Keys(prefix))


async def change(store: JobStore, job_id: str, **fields: object) -> None:
    assert await store.update(TENANT, job_id, lambda j: j.replace(**fields)) is not None


async def remove(store: JobStore, job_id: str) -> None:
    acquired = await store.acquire(TENANT, job_id, lease_s=5)
    assert acquired is not None
    assert await store.remove(acquired[0])


async def test_counts_follow_a_job_from_creation_to_its_end(store: JobStore) -> None:
    await store.create(new_job("j1"), b"[]")
    await store.create(new_job("j2"), b"[]")
    assert await store.state_counts(TENANT) == {JobState.QUEUED: 2}
    await change(store, "j1", state=JobState.RUNNING)
    assert await store.state_counts(TENANT) == {JobState.QUEUED: 1, JobState.RUNNING: 1}
    await change(store, "j1", state=JobState.SUCCEEDED)
    assert await store.state_counts(TENANT) == {JobState.QUEUED: 1}
    await change(store, "j1", display_name="renamed after the end")
    assert await store.state_counts(TENANT) == {JobState.QUEUED: 1}


async def test_a_retried_create_counts_the_job_once(store: JobStore) -> None:
    await store.create(new_job("j1"), b"[]")
    await store.create(new_job("j1"), b"[]")
    assert await store.state_counts(TENANT) == {JobState.QUEUED: 1}


async def test_a_cancel_counts_while_cancelling_and_not_once_cancelled(store: JobStore) -> None:
    await store.create(new_job("j1"), b"[]")
    await change(store, "j1", state=JobState.CANCELLING)
    assert await store.state_counts(TENANT) == {JobState.CANCELLING: 1}
    await change(store, "j1", state=JobState.CANCELLED)
    assert await store.state_counts(TENANT) == {}


async def test_deleted_and_removed_jobs_are_not_counted(store: JobStore) -> None:
    for job_id in ("j1", "j2", "j3"):
        await store.create(new_job(job_id), b"[]")
        await change(store, job_id, state=JobState.RUNNING, status_fetch_time=10.0)
    await change(store, "j1", deleted=True)
    assert await store.state_counts(TENANT) == {JobState.RUNNING: 2}
    await remove(store, "j1")  # deleted, then removed: counted once only
    await remove(store, "j2")  # removed while still counted
    assert await store.state_counts(TENANT) == {JobState.RUNNING: 1}
    await remove(store, "j3")
    assert await store.state_counts(TENANT) == {}
    assert await store.oldest_fetch(TENANT) is None


async def test_a_refused_save_moves_no_count(store: JobStore) -> None:
    await store.create(new_job("j1"), b"[]")
    stale = await store.read(TENANT, "j1")
    assert stale is not None
    await change(store, "j1", state=JobState.CREATING)
    with pytest.raises(Conflict):
        await store.save(stale, stale.job.replace(state=JobState.RUNNING))
    assert await store.state_counts(TENANT) == {JobState.CREATING: 1}


async def test_a_job_stored_before_the_counts_is_counted_from_its_next_save(
    store: JobStore, redis: Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    await store.create(new_job("old"), b"[]")
    await redis.hdel(keys.job(TENANT, "old"), "counted")  # as written before the counts
    await redis.delete(keys.tenant_state_counts(TENANT))
    await store.create(new_job("new"), b"[]")
    assert await store.state_counts(TENANT) == {JobState.QUEUED: 1}
    await change(store, "old", state=JobState.RUNNING)
    assert await store.state_counts(TENANT) == {JobState.QUEUED: 1, JobState.RUNNING: 1}
    await redis.hdel(keys.job(TENANT, "new"), "counted")
    await remove(store, "new")  # nothing to take off for it: its count stays (documented)
    assert await store.state_counts(TENANT) == {JobState.QUEUED: 1, JobState.RUNNING: 1}


async def test_the_fetched_set_follows_running_saves(store: JobStore) -> None:
    for job_id in ("j1", "j2"):
        await store.create(new_job(job_id), b"[]")
    await change(store, "j1", state=JobState.CREATING, status_fetch_time=5.0)
    assert await store.oldest_fetch(TENANT) is None  # not RUNNING
    await change(store, "j1", state=JobState.RUNNING, status_fetch_time=100.0)
    await change(store, "j2", state=JobState.RUNNING, status_fetch_time=50.5)
    assert await store.oldest_fetch(TENANT) == 50.5
    await change(store, "j2", status_fetch_time=200.0)
    assert await store.oldest_fetch(TENANT) == 100.0
    await change(store, "j1", state=JobState.SUCCEEDED)
    assert await store.oldest_fetch(TENANT) == 200.0
    await change(store, "j2", deleted=True)
    assert await store.oldest_fetch(TENANT) is None


async def test_queue_depth_and_its_oldest_job(store: JobStore) -> None:
    assert await store.queue_depth(TENANT) == 0
    assert await store.oldest_queued_id(TENANT) is None
    for job_id in ("j1", "j2", "j3"):
        await store.create(new_job(job_id), b"[]")
    await change(store, "j1", deleted=True)
    assert await store.queue_depth(TENANT) == 2
    assert await store.oldest_queued_id(TENANT) == "j2"


async def test_counts_match_a_recount_after_random_operations(store: JobStore) -> None:
    rng = random.Random(15)
    ids = [f"j{n}" for n in range(30)]
    for job_id in ids:
        await store.create(new_job(job_id), b"[]")
    for step in range(1, 241):
        live = [job_id for job_id in ids if await store.read(TENANT, job_id) is not None]
        await random_operation(store, rng, rng.choice(live))
        if step % 40 == 0:
            assert await store.state_counts(TENANT) == await recount(store, ids)
            assert await store.oldest_fetch(TENANT) == await oldest_fetch_recount(store, ids)


async def random_operation(store: JobStore, rng: random.Random, job_id: str) -> None:
    roll = rng.random()
    if roll < 0.03:
        await remove(store, job_id)
    elif roll < 0.08:
        await change(store, job_id, deleted=True)
    else:
        fetched = rng.choice([None, float(rng.randrange(1_000, 2_000))])
        await change(store, job_id, state=rng.choice(list(JobState)), status_fetch_time=fetched)


async def recount(store: JobStore, ids: list[str]) -> dict[JobState, int]:
    counts: Counter[JobState] = Counter()
    for job in await records(store, ids):
        if not job.deleted and not job.state.terminal:
            counts[job.state] += 1
    return dict(counts)


async def oldest_fetch_recount(store: JobStore, ids: list[str]) -> float | None:
    fetched = [
        job.status_fetch_time
        for job in await records(store, ids)
        if job.state == JobState.RUNNING and not job.deleted and job.status_fetch_time is not None
    ]
    return min(fetched, default=None)


async def records(store: JobStore, ids: list[str]) -> list[Job]:
    found = [await store.read(TENANT, job_id) for job_id in ids]
    return [f.job for f in found if f is not None]
