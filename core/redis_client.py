"""Connecting to Redis, and turning its failures into the project's errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from core.errors import ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

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


EVICTION_FREE = "noeviction"


async def refuse_evicting_redis(redis: Redis) -> None:
    """Stop the process if Redis may evict keys: a queue on an evicting Redis loses jobs.

    Managed Redis services may forbid CONFIG; then this can only warn.
    """
    try:
        reply: dict[Any, Any] = await redis.config_get("maxmemory-policy")
    except redis_errors.ResponseError as exc:
        log.warning("cannot read maxmemory-policy (%s); make sure it is noeviction", exc)
        return
    policy = text(reply.get("maxmemory-policy") or reply.get(b"maxmemory-policy") or b"")
    if policy and policy != EVICTION_FREE:
        raise SystemExit(
            f"Redis maxmemory-policy is {policy!r}: it may evict jobs. "
            f"Configure maxmemory-policy {EVICTION_FREE} (and appendonly yes)."
        )


def text(value: Any) -> str:
    """A Redis reply as str: bytes decoded, None as ""."""
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


@contextmanager
def translated_errors() -> Iterator[None]:
    """Map redis-py errors a caller can do nothing about to retryable project errors."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise Unavailable("the job store is unreachable; retry shortly", retry_after_s=1.0) from exc
    except redis_errors.ResponseError as exc:
        # Plain commands raise OutOfMemoryError; inside a script the same refusal arrives
        # as a script error carrying "-OOM".
        if isinstance(exc, redis_errors.OutOfMemoryError) or "OOM command not allowed" in str(exc):
            raise ResourceExhausted(
                "the job store is full; retry later", retry_after_s=30.0, reason="STORE_FULL"
            ) from exc
        raise
