"""The fleet-under-quota figure, run small, and the limiter behaviour it relies on."""

from __future__ import annotations

import pytest

from bench import fleet, priority
from core.redis.client import Redis
from core.redis.keys import Keys
from core.redis.token_bucket import RedisTokenBucket
from tests.clocks import LateSleeper

QUOTA_RPS, JOBS, WINDOW_S = 5, 8, 3.0


@pytest.mark.timeout(180)
async def test_the_figure_counts_what_the_quota_admitted_and_refused() -> None:
    use, share, creates, cancels = await fleet.measure(
        quota_rps=QUOTA_RPS, jobs=JOBS, window_s=WINDOW_S
    )

    assert use.baseline == QUOTA_RPS
    admitted, refused = use.details["admitted"], use.details["refused_429"]
    assert admitted > 0
    assert use.ours == pytest.approx(admitted / use.details["window_s"])
    # The emulator never admits more than the quota in any second.
    assert use.ours <= QUOTA_RPS * (1 + 1 / WINDOW_S)
    assert share.ours == pytest.approx(100 * refused / (admitted + refused))
    assert use.details["budget_rps"] == QUOTA_RPS - 1
    # Creates and cancels made while polls saturate the budget reached the upstream.
    assert creates.details["samples"] == priority.SAMPLES
    assert cancels.details["samples"] == min(priority.SAMPLES, JOBS)
    for latency in (creates, cancels):
        assert 0 < latency.details["p50_s"] <= latency.ours


async def test_the_operator_budget_is_one_under_the_quota_with_no_burst() -> None:
    assert fleet.operator_settings(20) == fleet.FleetBudget(upstream_rps=19.0, upstream_burst=1)
    with pytest.raises(ValueError, match="at least 2"):
        fleet.operator_settings(1)


async def test_demand_under_the_quota_is_refused() -> None:
    with pytest.raises(ValueError, match="do not exceed the quota"):
        await fleet.measure(quota_rps=20, jobs=10)


def _bucket(redis: Redis, prefix: str, clock: LateSleeper) -> RedisTokenBucket:
    return RedisTokenBucket(
        redis,
        Keys(prefix).upstream_bucket(),
        rate_per_s=10.0,
        burst=1,
        max_wait_s=5.0,
        late_s=0.05,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )


async def test_a_token_woken_up_to_late_is_dropped_and_another_taken(
    redis: Redis, prefix: str
) -> None:
    clock = LateSleeper(late_s=0.3, late_times=1)
    bucket = _bucket(redis, prefix, clock)

    await bucket.acquire()  # the burst of one: at once
    await bucket.acquire()  # due in 0.1 s, woken 0.3 s late: dropped; the next is 0.1 s later

    assert clock.waits_s == [pytest.approx(0.1, abs=0.02), pytest.approx(0.2, abs=0.02)]


async def test_a_token_woken_up_to_on_time_is_used(redis: Redis, prefix: str) -> None:
    clock = LateSleeper(late_s=0.01, late_times=1)
    bucket = _bucket(redis, prefix, clock)

    await bucket.acquire()
    await bucket.acquire()

    assert clock.waits_s == [pytest.approx(0.1, abs=0.02)]


async def test_a_caller_late_every_time_sends_after_three_tokens(redis: Redis, prefix: str) -> None:
    clock = LateSleeper(late_s=1.0, late_times=10)
    bucket = _bucket(redis, prefix, clock)

    await bucket.acquire()
    await bucket.acquire()

    assert len(clock.waits_s) == 3
