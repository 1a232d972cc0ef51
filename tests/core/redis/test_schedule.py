"""The schedule's two lanes: work before polls, polls only within the upstream budget,
reschedules sent with the next claim, and a caller's wake never undone by them."""

from __future__ import annotations

import time

import pytest

from core.redis.client import Redis
from core.redis.keys import Keys
from core.redis.schedule import Claimed, Moves, Schedule
from core.redis.scripts import PollBudget


def budget(prefix: str, rate_per_s: float, burst: int) -> PollBudget:
    return PollBudget(Keys(prefix).upstream_bucket(), rate_per_s, burst, wait_ms=250)


def claimed_ids(claimed: list[Claimed]) -> list[str]:
    return [c.job_id for c in claimed]


async def test_due_work_is_handed_out_before_due_polls(redis: Redis, prefix: str) -> None:
    schedule = Schedule(redis, Keys(prefix))
    for n in range(5):
        await schedule.due_in("team-a", f"poll{n}", 0, poll=True)
    await schedule.due_in("team-a", "create", 0)
    first = await schedule.claim(3, lease_s=30)
    assert claimed_ids(first) == ["create", "poll0", "poll1"]
    assert first[0].token_at_s is None  # work takes no token with its claim


async def test_polls_are_handed_out_only_as_the_budget_allows(redis: Redis, prefix: str) -> None:
    schedule = Schedule(redis, Keys(prefix), budget(prefix, rate_per_s=10, burst=2))
    for n in range(50):
        await schedule.due_in("team-a", f"poll{n}", 0, poll=True)
    before = time.monotonic()
    first = await schedule.claim(50, lease_s=30)
    # A burst of 2 at once, then one every 100 ms up to the 250 ms a poll may wait.
    assert 4 <= len(first) <= 5
    moments = [c.token_at_s for c in first]
    assert all(m is not None for m in moments)
    assert sorted(m - before for m in moments if m is not None)[-1] <= 0.3 + 0.2
    # Work is never held back by the budget.
    await schedule.due_in("team-a", "cancel", 0)
    assert claimed_ids(await schedule.claim(50, lease_s=30)) == ["cancel"]


async def test_reschedules_go_with_the_next_claim(redis: Redis, prefix: str) -> None:
    schedule, moves = Schedule(redis, Keys(prefix)), Moves()
    await schedule.due_in("team-a", "j1", 0)
    await schedule.due_in("team-a", "j2", 0)
    assert len(await schedule.claim(10, lease_s=30, moves=moves)) == 2
    moves.add("team-a", "j1", 0, poll=True)  # its visit ended: poll it now
    moves.add("team-a", "j2", None, poll=False)  # its visit ended: nothing more to do
    again = await schedule.claim(10, lease_s=30, moves=moves)
    assert claimed_ids(again) == ["j1"] and len(moves) == 0
    await schedule.due_in("team-a", "j1", 0, only_if_present=True)
    assert claimed_ids(await schedule.claim(10, lease_s=30)) == ["j1"]  # still in its lane
    assert await schedule.ensure("team-a", ["j1", "j2"]) == 1  # j2 had left the schedule


@pytest.mark.parametrize("poll", [True, False])
async def test_a_wake_is_not_undone_by_the_visits_reschedule(
    redis: Redis, prefix: str, poll: bool
) -> None:
    schedule, moves = Schedule(redis, Keys(prefix)), Moves()
    await schedule.due_in("team-a", "j1", 0, poll=True)
    assert len(await schedule.claim(10, lease_s=30)) == 1
    await schedule.due_in("team-a", "j1", 0)  # the caller cancels while the poll runs
    moves.add("team-a", "j1", 60, poll=poll)  # the poll's plan, older than the cancel
    assert claimed_ids(await schedule.claim(10, lease_s=30, moves=moves)) == ["j1"]
