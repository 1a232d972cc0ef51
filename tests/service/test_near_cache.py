"""The near cache against a real redis-server: invalidation, fill races, silence, loss."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from core.redis.client import Redis, RedisEndpoints, text
from devstack.redis_server import RedisServer
from service.near_cache import NearCache

BOUND_S = 1.0


async def eventually(check: Callable[[], bool], within_s: float = BOUND_S) -> float:
    """Seconds until `check()` holds; fails after `within_s`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within_s, "not within the bound"
        await asyncio.sleep(0.002)
    return time.monotonic() - started


async def tracking(cache: NearCache[str]) -> NearCache[str]:
    await cache.start()
    await eventually(lambda: cache.begin("probe") is not None, within_s=5.0)
    cache.store(cache.begin("probe"), "ready")
    return cache


@pytest.fixture
async def cache(redis_server: RedisServer, prefix: str) -> AsyncIterator[NearCache[str]]:
    near: NearCache[str] = NearCache(
        RedisEndpoints(redis_server.url), prefix + ":", max_stale_s=0.3, heartbeat_s=0.05
    )
    yield await tracking(near)
    await near.aclose()


async def filled(cache: NearCache[str], key: str, redis: Redis) -> str | None:
    """Read `key` into the cache, again if the invalidation of an earlier write (which
    may arrive during the read) made the cache refuse it; what the cache then holds."""
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        fill = cache.begin(key)
        value = await redis.get(key)
        if value is None:
            return None
        cache.store(fill, text(value))
        if cache.lookup(key) is not None:
            break
        await asyncio.sleep(0.005)
    return cache.lookup(key)


async def test_a_write_by_another_client_drops_the_entry_at_once(
    cache: NearCache[str], redis: Redis, prefix: str
) -> None:
    key = f"{prefix}:job:1"
    await redis.set(key, "RUNNING")
    assert await filled(cache, key, redis) == "RUNNING"

    await redis.set(key, "SUCCEEDED")
    await eventually(lambda: cache.lookup(key) is None)

    assert await filled(cache, key, redis) == "SUCCEEDED"


async def test_keys_outside_the_prefix_are_neither_tracked_nor_invalidating(
    cache: NearCache[str], redis: Redis, prefix: str
) -> None:
    key = f"{prefix}:job:2"
    await redis.set(key, "RUNNING")
    await filled(cache, key, redis)
    await redis.set("elsewhere:" + prefix, "x")
    await redis.set(key, "FAILED")  # the sentinel: its invalidation follows the other write
    await eventually(lambda: cache.lookup(key) is None)
    assert cache.flushes == 0


async def test_a_fill_that_raced_a_write_is_not_stored(
    cache: NearCache[str], redis: Redis, prefix: str
) -> None:
    key = f"{prefix}:job:3"
    await redis.set(key, "RUNNING")
    fill = cache.begin(key)
    old = await redis.get(key)  # read before the write ...
    await redis.set(key, "SUCCEEDED")
    sentinel = f"{prefix}:sentinel"
    await filled(cache, sentinel, redis)
    await redis.set(sentinel, "x")
    await eventually(lambda: cache.lookup(sentinel) is None)  # ... invalidation handled

    cache.store(fill, text(old))  # ... stored after it: refused

    assert cache.lookup(key) is None


async def test_flushall_empties_the_cache(
    cache: NearCache[str], redis: Redis, redis_server: RedisServer, prefix: str
) -> None:
    key = f"{prefix}:job:4"
    await redis.set(key, "RUNNING")
    await filled(cache, key, redis)
    flushes = cache.flushes
    await redis.flushdb()
    await eventually(lambda: cache.flushes > flushes)
    assert cache.lookup(key) is None


async def test_a_silent_redis_makes_the_cache_step_aside_within_max_stale(
    cache: NearCache[str], redis: Redis, prefix: str
) -> None:
    """Paused, Redis answers no ping; entries stop being served after max_stale_s."""
    key = f"{prefix}:job:5"
    await redis.set(key, "RUNNING")
    await filled(cache, key, redis)
    await redis.execute_command("CLIENT", "PAUSE", "1200", "ALL")
    paused_at = time.monotonic()

    await eventually(lambda: cache.lookup(key) is None, within_s=1.0)

    assert time.monotonic() - paused_at <= 0.3 + 0.2  # max_stale_s, plus scheduling slack
    await eventually(lambda: cache.begin(key) is not None, within_s=5.0)  # back after pause
    assert cache.lookup(key) == "RUNNING"  # nothing was written: the entry still holds


async def test_a_lost_connection_empties_the_cache_and_tracking_comes_back(
    cache: NearCache[str], redis: Redis, prefix: str
) -> None:
    key = f"{prefix}:job:6"
    await redis.set(key, "RUNNING")
    await filled(cache, key, redis)
    flushes = cache.flushes
    await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

    await eventually(lambda: cache.flushes > flushes)
    assert cache.lookup(key) is None
    await eventually(lambda: cache.begin(key) is not None, within_s=5.0)
    assert await filled(cache, key, redis) == "RUNNING"
    await redis.set(key, "CANCELLED")
    await eventually(lambda: cache.lookup(key) is None)


async def test_the_oldest_entry_leaves_when_full(redis_server: RedisServer, prefix: str) -> None:
    near: NearCache[str] = NearCache(RedisEndpoints(redis_server.url), prefix, max_entries=2)
    await tracking(near)
    try:
        for n in range(3):
            near.store(near.begin(f"{prefix}:{n}"), str(n))
        assert [near.lookup(f"{prefix}:{n}") for n in range(3)] == [None, "1", "2"]
    finally:
        await near.aclose()


async def test_closing_at_any_moment_of_start_up_ends_tracking(
    redis_server: RedisServer, prefix: str
) -> None:
    """redis-py can swallow a cancellation during connection set-up; close still ends."""
    for n in range(60):
        near: NearCache[str] = NearCache(RedisEndpoints(redis_server.url), prefix)
        await near.start()
        await asyncio.sleep(n * 0.0001)
        async with asyncio.timeout(5):
            await near.aclose()
        assert near._task is not None and near._task.done()
