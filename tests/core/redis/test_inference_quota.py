"""The inference limits' scripts on a real Redis: a settled call's debt refills at the rate,
an estimate above what is left waits, the slots of calls whose lease passed come back, holds
never shorten, and every script runs on Redis Cluster."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import GenerateQuotaExceeded
from core.redis.client import Redis, connect
from core.redis.inference_quota import GenerateLimits, InferenceQuota
from core.redis.keys import Keys
from devstack.redis_cluster import RedisCluster

pytestmark = pytest.mark.timeout(30)
TOKENS = GenerateLimits(requests_per_minute=0, tokens_per_minute=600, max_concurrent=0)
ONE_AT_A_TIME = GenerateLimits(requests_per_minute=0, tokens_per_minute=0, max_concurrent=1)


@pytest.fixture
def quota(redis: Redis, prefix: str) -> InferenceQuota:
    return InferenceQuota(redis, Keys(prefix))


async def admit(
    quota: InferenceQuota,
    limits: GenerateLimits,
    call_id: str = "c1",
    *,
    estimate: int = 1,
    lease_ms: int = 10_000,
) -> int:
    return await quota.admit(
        "team-a", limits, call_id=call_id, estimate_tokens=estimate, lease_ms=lease_ms
    )


async def test_an_estimate_above_what_is_left_waits_for_the_refill(quota: InferenceQuota) -> None:
    assert await admit(quota, TOKENS, estimate=5_000) == 600  # at most a minute's worth

    with pytest.raises(GenerateQuotaExceeded) as caught:
        await admit(quota, TOKENS, "c2", estimate=100)

    assert 9.5 <= caught.value.retry_after_s <= 10  # 100 tokens at 10 a second
    assert caught.value.metadata == {"quota": "generate_tokens_per_minute", "limit": "600"}


async def test_a_refund_gives_tokens_back_and_a_debt_makes_later_calls_wait(
    quota: InferenceQuota,
) -> None:
    await admit(quota, TOKENS, estimate=600)
    await quota.settle("team-a", TOKENS, call_id="c1", debit_tokens=-600)  # it used nothing
    await admit(quota, TOKENS, "c2", estimate=600)  # so the whole minute is there again
    await quota.settle("team-a", TOKENS, call_id="c2", debit_tokens=600)  # it used 1,200

    with pytest.raises(GenerateQuotaExceeded) as caught:
        await admit(quota, TOKENS, "c3")

    assert 59 <= caught.value.retry_after_s <= 61  # 601 tokens at 10 a second


async def test_a_slot_whose_lease_passed_comes_back(quota: InferenceQuota) -> None:
    await admit(quota, ONE_AT_A_TIME, "dead-replicas-call", lease_ms=100)
    with pytest.raises(GenerateQuotaExceeded) as caught:
        await admit(quota, ONE_AT_A_TIME, "c2")
    assert caught.value.retry_after_s == 1.0

    await asyncio.sleep(0.15)

    await admit(quota, ONE_AT_A_TIME, "c2")


async def test_a_hold_is_never_shortened(quota: InferenceQuota) -> None:
    assert await quota.held_ms("gemini_api:team-a") == 0
    await quota.hold("gemini_api:team-a", 30_000)
    await quota.hold("gemini_api:team-a", 1_000)

    assert 29_000 < await quota.held_ms("gemini_api:team-a") <= 30_000
    assert await quota.held_ms("gemini_api:team-b") == 0


async def test_the_scripts_run_on_redis_cluster(cluster: RedisCluster, prefix: str) -> None:
    client = connect(cluster.url, cluster=True)
    try:
        quota = InferenceQuota(client, Keys(prefix))
        every = GenerateLimits(requests_per_minute=1, tokens_per_minute=100, max_concurrent=1)
        taken = await admit(quota, every, estimate=10)
        await quota.settle("team-a", every, call_id="c1", debit_tokens=5 - taken)
        with pytest.raises(GenerateQuotaExceeded):
            await admit(quota, every, "c2")  # the minute's one call is spent
        await quota.hold("vertex:p1:us-central1", 5_000)
        assert await quota.held_ms("vertex:p1:us-central1") > 0
    finally:
        await client.aclose()
