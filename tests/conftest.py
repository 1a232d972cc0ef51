"""Session-wide real redis-server; per test, a fresh key prefix and the running system."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from core.redis.client import Redis
from devstack.redis_cluster import RedisCluster
from devstack.redis_server import RedisServer
from tests.harness import System, running_system


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisCluster]:
    """A real three-primary Redis Cluster, started once for the tests that need one."""
    with RedisCluster() as running:
        yield running


@pytest.fixture
def prefix() -> str:
    """This test's own key prefix: tests never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def redis(redis_server: RedisServer, prefix: str) -> AsyncIterator[Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def system(
    redis: Redis, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> AsyncIterator[System]:
    """Emulator, API and a running worker."""
    async with running_system(redis, redis_server.url, prefix, tmp_path) as running:
        yield running


SystemFactory = Callable[..., AbstractAsyncContextManager[System]]


@pytest.fixture
def make_system(
    redis: Redis, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> SystemFactory:
    """A system with settings overridden, e.g. `async with make_system(retry_budget_s=1)`."""

    def make(**overrides: Any) -> AbstractAsyncContextManager[System]:
        return running_system(redis, redis_server.url, prefix, tmp_path, **overrides)

    return make


@pytest.fixture
async def api_without_brake(
    redis: Redis, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> AsyncIterator[System]:
    """Emulator and API without the refusal brake, for tests that make hundreds of refused
    calls on purpose: the brake (tests/service/test_refusal_brake.py) would only slow them."""
    async with running_system(
        redis, redis_server.url, prefix, tmp_path, with_worker=False, tenant_refusals_per_s=0
    ) as running:
        yield running


@pytest.fixture
async def api_only(
    redis: Redis, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> AsyncIterator[System]:
    """Emulator and API, no worker until the test starts one."""
    async with running_system(
        redis, redis_server.url, prefix, tmp_path, with_worker=False
    ) as running:
        yield running
