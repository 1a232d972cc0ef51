"""The job store and schedule against a real Redis: CAS, leases, fencing, claims."""

from __future__ import annotations

import asyncio

import pytest

from core.domain.job import Job
from core.domain.states import JobState
from core.errors import AlreadyExists, LeaseHeld, LeaseLost
from core.redis.client import Redis
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.schedule import Schedule


def new_job(job_id: str = "j1", request_hash: str = "h1") -> Job:
    return Job(id=job_id, tenant="team-a", base_model="models/x", request_hash=request_hash)


@pytest.fixture
def store(redis: Redis, prefix: str) -> JobStore:
    return JobStore(redis, Keys(prefix))


async def test_create_is_idempotent_on_the_job_id(store: JobStore) -> None:
    assert (await store.create(new_job(), b"[]"))[1] is True
    again, created, _ = await store.create(new_job(), b"[]")
    assert created is False and again == new_job()
    with pytest.raises(AlreadyExists):
        await store.create(new_job(request_hash="other"), b"[]")


async def test_a_worker_whose_lease_was_taken_over_cannot_write(store: JobStore) -> None:
    await store.create(new_job(), b"[]")
    first, seen = await store.acquire("team-a", "j1", lease_s=0.05)  # type: ignore[misc]
    await asyncio.sleep(0.1)  # the first worker stalls past its lease
    second, _ = await store.acquire("team-a", "j1", lease_s=5)  # type: ignore[misc]
    assert second.epoch == first.epoch + 1
    with pytest.raises(LeaseLost):
        await store.save(seen, seen.job.replace(state=JobState.CREATING), lease=first)
    assert await store.renew(first, 5) is False
    stored = await store.update(
        "team-a", "j1", lambda j: j.replace(state=JobState.CREATING), lease=second
    )
    assert stored is not None and stored.state == JobState.CREATING


async def test_a_held_lease_is_not_handed_out_twice(store: JobStore) -> None:
    await store.create(new_job(), b"[]")
    await store.acquire("team-a", "j1", lease_s=5)
    with pytest.raises(LeaseHeld):
        await store.acquire("team-a", "j1", lease_s=5)


async def test_update_reapplies_its_change_to_a_newer_record(store: JobStore) -> None:
    await store.create(new_job(), b"[]")
    stale = await store.read("team-a", "j1")
    assert stale is not None
    await store.update("team-a", "j1", lambda j: j.replace(labels={"by": "api"}))
    calls: list[Job] = []

    def change(job: Job) -> Job:
        calls.append(job)
        return job.replace(display_name="worker")

    result = await store.update("team-a", "j1", change)
    assert result is not None
    assert result.labels == {"by": "api"} and result.display_name == "worker"


async def test_claims_hand_each_due_job_to_one_worker_until_the_claim_runs_out(
    redis: Redis, prefix: str
) -> None:
    schedule = Schedule(redis, Keys(prefix))
    for n in range(5):
        await schedule.due_in("team-a", f"j{n}", 0)
    await schedule.due_in("team-a", "later", 60)
    first = await schedule.claim(10, lease_s=0.1)
    assert sorted(c[:2] for c in first) == [("team-a", f"j{n}") for n in range(5)]
    assert await schedule.claim(10, lease_s=0.1) == []
    await asyncio.sleep(0.15)  # the claiming worker died: its claims come due again
    assert len(await schedule.claim(10, lease_s=5)) == 5
