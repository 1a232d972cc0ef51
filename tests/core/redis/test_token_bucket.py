"""The fleet's upstream budget: urgent requests ahead of polls, a 429 holds everyone, a
token woken up to late is dropped, and a prepaid token is spent once."""

from __future__ import annotations

import pytest

from core.errors import RateLimited
from core.redis.client import Redis
from core.redis.keys import Keys
from core.redis.token_bucket import RedisTokenBucket, prepaid
from tests.clocks import LateSleeper


def bucket(redis: Redis, prefix: str, sleeper: LateSleeper) -> RedisTokenBucket:
    return RedisTokenBucket(
        redis,
        Keys(prefix).upstream_bucket(),
        rate_per_s=10.0,
        burst=1,
        max_wait_s=5.0,
        background_wait_s=0.25,
        monotonic=sleeper.monotonic,
        sleep=sleeper.sleep,
    )


async def test_polls_never_queue_far_ahead_of_an_urgent_request(redis: Redis, prefix: str) -> None:
    sleeper = LateSleeper(late_s=0.0, late_times=0)
    budget = bucket(redis, prefix, sleeper)
    await budget.acquire(urgent=False)  # the burst
    await budget.acquire(urgent=False)  # 0.1 s ahead
    await budget.acquire(urgent=False)  # 0.2 s ahead
    with pytest.raises(RateLimited) as refused:
        await budget.acquire(urgent=False)  # 0.3 s: more than a poll may wait
    assert refused.value.retry_after_s == pytest.approx(0.3, abs=0.03)
    for _ in range(10):  # creates and cancels may reserve far further
        await budget.acquire(urgent=True)
    assert sleeper.waits_s[-1] == pytest.approx(1.2, abs=0.05)
    # The create behind the polls waited only what the polls had reserved, 0.3 s.
    assert sleeper.waits_s[2] == pytest.approx(0.3, abs=0.03)


async def test_a_hold_off_delays_every_request_of_the_fleet(redis: Redis, prefix: str) -> None:
    sleeper = LateSleeper(late_s=0.0, late_times=0)
    first, second = bucket(redis, prefix, sleeper), bucket(redis, prefix, sleeper)
    await first.hold_off(2.0)  # a 429 said: come back in 2 s
    with pytest.raises(RateLimited) as refused:
        await second.acquire(urgent=False)
    assert refused.value.retry_after_s == pytest.approx(2.0, abs=0.05)
    await second.acquire(urgent=True)
    assert sleeper.waits_s == [pytest.approx(2.0, abs=0.05)]
    await first.hold_off(0.5)  # a shorter hold never shortens the one in force
    await first.acquire(urgent=True)
    assert sleeper.waits_s[-1] == pytest.approx(2.1, abs=0.05)


async def test_a_prepaid_token_is_spent_once_without_asking_redis(
    redis: Redis, prefix: str
) -> None:
    sleeper = LateSleeper(late_s=0.0, late_times=0)
    budget = bucket(redis, prefix, sleeper)
    with prepaid(sleeper.monotonic() + 0.2):  # the claim booked it 0.2 s ahead
        await budget.acquire(urgent=False)
        assert sleeper.waits_s == [pytest.approx(0.2)]
        assert not await redis.exists(Keys(prefix).upstream_bucket())  # not asked
        await budget.acquire(urgent=False)  # the visit's second request takes its own
    assert await redis.exists(Keys(prefix).upstream_bucket())


async def test_a_prepaid_token_woken_up_to_late_is_replaced(redis: Redis, prefix: str) -> None:
    sleeper = LateSleeper(late_s=0.5, late_times=1)
    budget = bucket(redis, prefix, sleeper)
    with prepaid(sleeper.monotonic() + 0.1):
        await budget.acquire(urgent=False)
    assert await redis.exists(Keys(prefix).upstream_bucket())  # took a fresh one


async def test_a_token_woken_up_to_late_is_dropped_and_another_taken(
    redis: Redis, prefix: str
) -> None:
    clock = LateSleeper(late_s=0.3, late_times=1)
    budget = bucket(redis, prefix, clock)

    await budget.acquire()  # the burst of one: at once
    await budget.acquire()  # due in 0.1 s, woken 0.3 s late: dropped; the next is 0.1 s later

    assert clock.waits_s == [pytest.approx(0.1, abs=0.02), pytest.approx(0.2, abs=0.02)]


async def test_a_token_woken_up_to_on_time_is_used(redis: Redis, prefix: str) -> None:
    clock = LateSleeper(late_s=0.01, late_times=1)
    budget = bucket(redis, prefix, clock)

    await budget.acquire()
    await budget.acquire()

    assert clock.waits_s == [pytest.approx(0.1, abs=0.02)]


async def test_a_caller_late_every_time_sends_after_three_tokens(redis: Redis, prefix: str) -> None:
    clock = LateSleeper(late_s=1.0, late_times=10)
    budget = bucket(redis, prefix, clock)

    await budget.acquire()
    await budget.acquire()

    assert len(clock.waits_s) == 3
