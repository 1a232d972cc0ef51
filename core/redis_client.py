"""Connecting to Redis, and turning its failures into the project's errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from core.errors import ResourceExhausted, Unavailable

Redis = aioredis.Redis | aioredis.RedisCluster


def connect(url: str, *, cluster: bool = False, timeout_s: float = 2.0) -> Redis:
    """A client for `url`; short timeouts so a lost Redis fails calls fast, not late."""
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 10,
    }
    if cluster:
        return aioredis.RedisCluster.from_url(url, **options)
    return aioredis.Redis.from_url(url, **options)


@contextmanager
def translated_errors() -> Iterator[None]:
    """Map redis-py errors a caller can do nothing about to retryable project errors."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise Unavailable("the job store is unreachable; retry shortly", retry_after_s=1.0) from exc
    except redis_errors.ResponseError as exc:
        if str(exc).startswith("OOM"):
            raise ResourceExhausted(
                "the job store is full; retry later", retry_after_s=30.0, reason="STORE_FULL"
            ) from exc
        raise
