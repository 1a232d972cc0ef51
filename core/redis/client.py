"""Connecting to Redis, and turning its failures into the project's errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.connection import AbstractConnection, parse_url

from core.errors import Reason, ResourceExhausted, Unavailable
from core.redis.pipelined import PipelinedConnection

log = logging.getLogger(__name__)

Redis = aioredis.Redis | aioredis.RedisCluster
RoundTrips = Callable[[], None]
"""Told of each round trip to Redis (`connect`)."""


def connect(
    url: str,
    *,
    cluster: bool = False,
    timeout_s: float = 2.0,
    round_trips: RoundTrips | None = None,
) -> Redis:
    """A client for `url`; short timeouts so a lost Redis fails calls fast, not late.

    `round_trips`, if given, is called once per round trip the client makes.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 10,
    }
    client: Redis
    if cluster:
        client = aioredis.RedisCluster.from_url(url, **options)
    else:
        pipelining = cast(PipelinedRedis, PipelinedRedis.from_url(url, **options))
        pipelining.round_trips = round_trips
        client = pipelining
    if round_trips is not None:
        _count_round_trips(client, round_trips)
    return client


class PipelinedRedis(aioredis.Redis):
    """A client that may also hold one pipelined connection to its server
    (core.redis.pipelined), opened on first use and closed with the client."""

    _pipelined: PipelinedConnection | None = None
    _pipelined_checked = False
    round_trips: RoundTrips | None = None
    """Told of each write of the pipelined connection too (`connect`)."""

    @property
    def pipelined(self) -> PipelinedConnection | None:
        """The pipelined connection; None if the client's transport has none (TLS, Unix)."""
        if not self._pipelined_checked:
            self._pipelined = PipelinedConnection.of(self, self.round_trips)
            self._pipelined_checked = True
        return self._pipelined

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._pipelined is not None:
            await self._pipelined.aclose()
        await super().aclose(close_connection_pool)


def _count_round_trips(client: Redis, count: RoundTrips) -> None:
    """Have every connection `client` opens call `count` once per round trip.

    redis-py sends each command, and each whole pipeline or transaction, with one
    `send_packed_command` call and then reads the replies: one call is one round trip.
    A script run is one (EVALSHA); three when Redis lacks the script (NOSCRIPT, SCRIPT
    LOAD, EVALSHA again; on a cluster SCRIPT LOAD goes to every primary). Also counted:
    a new connection's setup, one per command sent (HELLO, CLIENT ..., PING: about five),
    and the PING before a command on a connection idle for `health_check_interval`.

    The connection class is wrapped once the client is made, because the URL's scheme
    picks it (TCP, TLS or a Unix socket), and because RedisCluster takes no
    `connection_class`: every node it meets later is built from its `connection_kwargs`,
    its startup nodes already were.
    """
    if isinstance(client, aioredis.RedisCluster):
        options = client.connection_kwargs
        options["connection_class"] = _counting(options["connection_class"], count)
        for node in client.startup_nodes:
            node.connection_class = options["connection_class"]
    else:
        pool = client.connection_pool
        pool.connection_class = _counting(pool.connection_class, count)


C = TypeVar("C", bound=AbstractConnection)


def _counting(base: type[C], count: RoundTrips) -> type[C]:
    """`base`, calling `count` before each send."""

    async def send_packed_command(self: C, command: Any, check_health: bool = True) -> None:
        count()
        await base.send_packed_command(self, command, check_health)

    body = {"send_packed_command": send_packed_command}
    return cast(type[C], type(f"Counting{base.__name__}", (base,), body))


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
