"""Connecting to Redis, and turning its failures into the project's errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.connection import parse_url

from core.errors import Reason, ResourceExhausted, Unavailable

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


Address = tuple[str, int]


class RedisEndpoints:
    """The primaries behind a Redis URL, and plain RESP2 clients for each.

    For connections that hold per-connection server state (client tracking): they
    must reach one chosen node, speak RESP2 (pub/sub replies inline) and never time out
    while idle.
    """

    def __init__(self, url: str, *, cluster: bool = False, timeout_s: float = 2.0) -> None:
        self._options: dict[str, Any] = dict(parse_url(url))
        self._options |= {"protocol": 2, "socket_connect_timeout": timeout_s}
        self._seed: Address = (
            self._options.pop("host", "localhost"),
            self._options.pop("port", 6379),
        )
        self._cluster = cluster
        self._timeout_s = timeout_s
        self._known: list[Address] = [self._seed]

    def client(self, address: Address) -> aioredis.Redis:
        host, port = address
        return aioredis.Redis(host=host, port=port, **self._options)

    async def primaries(self) -> list[Address]:
        """The seed address, or on a cluster every primary (asked of a known node)."""
        if not self._cluster:
            return [self._seed]
        for address in [self._seed, *self._known]:
            with contextlib.suppress(redis_errors.RedisError, OSError):
                self._known = await self._cluster_primaries(address)
                return self._known
        raise Unavailable("no Redis Cluster node answers CLUSTER SLOTS", retry_after_s=1.0)

    async def _cluster_primaries(self, address: Address) -> list[Address]:
        client = self.client(address)
        try:
            async with asyncio.timeout(self._timeout_s):
                slots = await client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
        finally:
            await client.aclose()
        # A plain client gets CLUSTER SLOTS raw: [[start, end, [host, port, id], ...], ...].
        return sorted({(text(r[2][0]) or address[0], int(r[2][1])) for r in slots})


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
                "the job store is full; retry later", retry_after_s=30.0, reason=Reason.STORE_FULL
            ) from exc
        raise
