"""The wait for Redis at start-up: its backoff, what it retries and what it refuses."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
import redis.asyncio as aioredis

from core.errors import Unavailable
from core.redis.client import Redis, connect
from core.redis.startup import RETRY_MAX_S, RedisStartup, backoff_delays_s
from devstack.redis_server import RedisServer, free_port


def test_the_backoff_doubles_its_cap_up_to_the_maximum_with_full_jitter() -> None:
    delays = backoff_delays_s(0.25, 5.0, random.Random(7))
    taken = [next(delays) for _ in range(200)]
    caps = [min(5.0, 0.25 * 2**n) for n in range(200)]
    assert all(0 <= d <= cap for d, cap in zip(taken, caps, strict=True))
    assert max(taken[:3]) <= 1.0 and max(taken) > 4.0  # grows, and is jittered below the cap
    assert len(set(taken)) == len(taken)
    assert next(backoff_delays_s()) <= RETRY_MAX_S


async def test_a_redis_that_answers_passes_at_the_first_attempt(redis: Redis) -> None:
    startup = RedisStartup(redis, delays_s=[])  # no retry allowed
    assert startup.conditions()["redis start-up checks"]() is False
    assert await startup.wait(asyncio.Event()) is True
    assert startup.conditions()["redis start-up checks"]() is True


async def test_an_absent_redis_is_retried_with_one_warning_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    startup = RedisStartup(client, delays_s=[0.01, 0.01])  # three attempts
    with caplog.at_level(logging.WARNING, "core.redis.startup"), pytest.raises(Unavailable):
        await startup.wait(asyncio.Event())
    assert [r.getMessage()[:28] for r in caplog.records] == [
        "Redis not ready (attempt 1: ",
        "Redis not ready (attempt 2: ",
    ]
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in caplog.records)
    assert startup.passed is False
    await client.aclose()


async def test_a_stop_during_the_wait_ends_it() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    stop = asyncio.Event()
    stop.set()
    assert await RedisStartup(client, delays_s=[30.0]).wait(stop) is False
    await client.aclose()


async def test_a_redis_that_comes_up_during_the_wait_is_taken() -> None:
    with RedisServer() as server:
        server.crash()
        client = connect(server.url, timeout_s=0.5)
        startup = RedisStartup(client, delays_s=[0.05] * 200)
        waiting = asyncio.create_task(startup.wait(asyncio.Event()))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        server.restart()
        async with asyncio.timeout(10):
            assert await waiting is True
        await client.aclose()


async def test_misconfigured_redis_is_refused_at_once_not_retried() -> None:
    with RedisServer(maxmemory_policy="allkeys-lru") as server:
        client = connect(server.url)
        with pytest.raises(SystemExit, match="noeviction"):
            await RedisStartup(client, delays_s=[0.01] * 100).wait(asyncio.Event())
        await client.aclose()
    with RedisServer() as server:
        admin = aioredis.Redis.from_url(server.url)
        await admin.config_set("requirepass", "the-password")
        await admin.aclose()
        client = connect(server.url)  # no password
        with pytest.raises(SystemExit, match="refused the credentials"):
            await RedisStartup(client, delays_s=[0.01] * 100).wait(asyncio.Event())
        await client.aclose()
