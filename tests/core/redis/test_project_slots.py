"""Slots of Vertex AI projects: a line per project, first come first served, shared by
every member that asks; a limit of 0 grants everyone."""

from __future__ import annotations

import time

from core.redis.client import Redis
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.project_slots import Placement, ProjectSlots
from core.runtime.metrics import Metrics
from worker.gauges import GaugeSampler


def slots(redis: Redis, prefix: str, **limits: int) -> ProjectSlots:
    return ProjectSlots(redis, Keys(prefix), lambda project: limits.get(project, 0))


async def test_past_the_limit_members_wait_in_line_in_the_order_they_asked(
    redis: Redis, prefix: str
) -> None:
    project = slots(redis, prefix, p1=1)
    assert await project.take("p1", "a/j1") == Placement(granted=True)
    assert await project.take("p1", "b/j2") == Placement(granted=False, position=1)
    assert await project.take("p1", "a/j3") == Placement(granted=False, position=2)
    # Asking again keeps the place; a holder keeps its slot.
    assert await project.take("p1", "a/j3") == Placement(granted=False, position=2)
    assert await project.take("p1", "a/j1") == Placement(granted=True)
    assert await project.holders("p1") == ["a/j1"]
    assert [await project.position("p1", m) for m in ("a/j1", "b/j2", "a/j3")] == [0, 1, 2]


async def test_a_slot_given_back_wakes_the_head_of_the_line_and_is_kept_for_it(
    redis: Redis, prefix: str
) -> None:
    project = slots(redis, prefix, p1=1)
    await project.take("p1", "a/j1")
    await project.take("p1", "b/j2")
    await project.take("p1", "a/j3")
    assert await project.give_back("p1", "a/j1") == ["b/j2"]
    # The third comes back first: the slot is the head's, not the third's.
    assert await project.take("p1", "a/j3") == Placement(granted=False, position=2)
    assert await project.take("p1", "b/j2") == Placement(granted=True)
    assert await project.position("p1", "a/j3") == 1
    assert await project.give_back("p1", "a/j1") == []  # idempotent: already given back
    assert await project.give_back("p1", "b/j2") == ["a/j3"]


async def test_leaving_the_line_lets_the_next_one_in(redis: Redis, prefix: str) -> None:
    project = slots(redis, prefix, p1=1)
    await project.take("p1", "a/j1")
    await project.take("p1", "b/j2")
    await project.take("p1", "b/j3")
    assert await project.give_back("p1", "b/j2") == []  # a waiter leaving frees no slot
    assert await project.waiters("p1") == ["b/j3"]
    assert await project.give_back("p1", "a/j1") == ["b/j3"]
    assert await project.take("p1", "b/j3") == Placement(granted=True)


async def test_without_a_limit_every_member_is_granted_and_nothing_is_stored(
    redis: Redis, prefix: str
) -> None:
    project = slots(redis, prefix)
    for n in range(5):
        assert await project.take("p1", f"a/j{n}") == Placement(granted=True)
    assert await project.holders("p1") == []
    assert await project.give_back("p1", "a/j0") == []


async def test_a_member_of_two_pools_is_placed_on_the_one_with_room(
    redis: Redis, prefix: str
) -> None:
    project = slots(redis, prefix, full=1, roomy=2)
    await project.take("full", "a/j1")
    placements = {p: await project.take(p, "b/j2") for p in ("full", "roomy")}
    assert placements == {
        "full": Placement(granted=False, position=1),
        "roomy": Placement(granted=True),
    }
    assert await project.give_back("full", "b/j2") == []  # leaves the other line
    assert await project.waiters("full") == []
    assert await project.holders("roomy") == ["b/j2"]


async def test_a_lowered_limit_admits_no_one_until_holders_are_below_it(
    redis: Redis, prefix: str
) -> None:
    limits = {"p1": 2}
    project = ProjectSlots(redis, Keys(prefix), lambda p: limits[p])
    await project.take("p1", "a/j1")
    await project.take("p1", "a/j2")
    limits["p1"] = 1
    assert await project.take("p1", "b/j3") == Placement(granted=False, position=1)
    assert await project.give_back("p1", "a/j1") == []
    assert await project.give_back("p1", "a/j2") == ["b/j3"]


async def test_the_gauges_show_slots_used_and_jobs_waiting_per_limited_project(
    redis: Redis, prefix: str
) -> None:
    project = slots(redis, prefix, p1=1)
    for member in ("a/j1", "b/j2", "a/j3"):
        await project.take("p1", member)
    assert await project.counts("p1") == (1, 2)
    metrics, keys = Metrics.create(), Keys(prefix)
    sampler = GaugeSampler(
        redis,
        keys,
        JobStore(redis, keys),
        metrics,
        tuple,
        time.time,
        slots=project,
        projects=lambda: ["p1", "unlimited"],
    )
    await sampler.sample()
    read = metrics.registry.get_sample_value
    assert read("tuning_project_slots_used", {"project": "p1"}) == 1
    assert read("tuning_project_jobs_waiting", {"project": "p1"}) == 2
    assert read("tuning_project_slots_used", {"project": "unlimited"}) is None
