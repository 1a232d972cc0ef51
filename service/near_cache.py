"""A near cache of Redis keys, kept coherent by Redis server-assisted client-side caching.

Each process that caches holds one connection to every Redis primary on which it has
run `CLIENT TRACKING ON REDIRECT <itself> BCAST PREFIX <prefix>` and then
`SUBSCRIBE __redis__:invalidate` (RESP2, Redis 6.0 or newer). From then on, whichever
client writes a key under the prefix, Redis sends that key's name on this connection as
part of the write's own event-loop turn, and the cache drops it. A read that hits the
cache never leaves the process; a write is seen by every replica as soon as the
invalidation arrives (well under a millisecond on one host).

Two things could let a stale value be served, and each is closed:

- *A fill racing a write*: a value read from Redis just before a write, stored after the
  write's invalidation was handled, would stay. So a fill is a `Fill` token taken before
  the read; storing it is refused if its key (or everything) was invalidated since.
- *A tracking connection that silently stops* (a partition, a paused Redis): the cache
  then hears nothing and would serve old values forever. So every `heartbeat_s` the
  connection sends PING; in subscribe mode the pong comes back in order behind every
  invalidation Redis sent before it, so an answered ping sent at time S proves the cache
  has every invalidation for writes before S. Entries are served only while the oldest
  of the primaries' latest answered pings was sent less than `max_stale_s` ago; past
  that the cache is bypassed (reads go to Redis), and after `dead_after_s` without an
  answer the connections are rebuilt and the cache emptied.

So a cached read is at most `max_stale_s` behind Redis, whatever fails; normally it is
behind by the delivery time of one invalidation message.

The cache holds at most `max_entries` entries and `max_bytes` bytes, counting each
entry's key, its value as `size_of` measures it, and ENTRY_OVERHEAD_BYTES; the oldest
stored leave first to make room, and a value larger than the whole bound is not kept.

BCAST mode sends every write under the prefix to every caching process, read or not:
more messages than the default mode, but the reads that fill the cache may then use any
pooled connection, which keeps a single tracked connection from serializing cache misses.
On Redis Cluster there is one tracking connection per primary; a failover breaks it and
so empties the cache. Slot migration without a failover is caught by re-reading the
cluster's primaries every `topology_check_s`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from core.redis.client import Address

log = logging.getLogger(__name__)

INVALIDATE_CHANNEL = "__redis__:invalidate"
RECONNECT_BACKOFF_S = (0.1, 0.2, 0.5, 1.0, 2.0)
CLOSE_TIMEOUT_S = 1.0
ENTRY_OVERHEAD_BYTES = 200
"""What one entry costs besides its key and value: dict slots, its size, the str header."""
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

V = TypeVar("V")
Clock = Callable[[], float]


class Endpoints(Protocol):
    """Where the primaries are, and a RESP2 client for one (core.redis.client)."""

    async def primaries(self) -> list[Address]: ...

    def client(self, address: Address) -> aioredis.Redis: ...


@dataclass(frozen=True)
class Fill:
    """A permission to store a value read from Redis after this token was taken."""

    key: str
    seq: int


def size_of_value(value: object) -> int:
    """The default measure of a value: its length for str and bytes, else sys.getsizeof."""
    if isinstance(value, str | bytes):
        return len(value)
    return sys.getsizeof(value)


class _Tracker:
    """One tracking connection to one primary: invalidations in, pings out."""

    def __init__(self, endpoints: Endpoints, address: Address, prefix: str, clock: Clock) -> None:
        self.address = address
        self._client = endpoints.client(address)
        self._prefix = prefix
        self._clock = clock
        self._conn: Any = None
        self._pings: collections.deque[float] = collections.deque()
        self.acked_at = -math.inf
        """When the latest answered ping was sent (monotonic seconds)."""

    async def open(self) -> None:
        conn = self._client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        await conn.connect()
        self._conn = conn
        client_id = await self._command("CLIENT", "ID")
        await self._command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", self._prefix
        )
        await self._command("SUBSCRIBE", INVALIDATE_CHANNEL)
        self.acked_at = self._clock()  # subscribed now: nothing before this can be missed

    async def _command(self, *args: Any) -> Any:
        await self._send(*args)
        return await self._conn.read_response(timeout=math.inf)

    async def ping(self) -> None:
        self._pings.append(self._clock())
        await self._send("PING")

    async def _send(self, *args: Any) -> None:
        try:
            await self._conn.send_command(*args)
        except AttributeError as exc:  # redis-py, when the connection was closed meanwhile
            raise redis_errors.ConnectionError("the tracking connection is closed") from exc

    async def listen(self, invalidated: Callable[[list[bytes] | None], None]) -> None:
        """Hand each invalidation to `invalidated` (None: everything) until the link fails."""
        while True:
            message = await self._conn.read_response(timeout=math.inf)
            kind = message[0] if isinstance(message, list) and message else None
            if kind == b"message":
                invalidated(message[2])
            elif kind == b"pong" and self._pings:
                self.acked_at = self._pings.popleft()

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.disconnect(nowait=True)
        await self._client.aclose()


class NearCache(Generic[V]):
    """Values of Redis keys under `prefix`, held in process until Redis says they changed."""

    def __init__(
        self,
        endpoints: Endpoints,
        prefix: str,
        *,
        max_entries: int = 10_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        size_of: Callable[[V], int] = size_of_value,
        max_stale_s: float = 1.0,
        heartbeat_s: float = 0.1,
        dead_after_s: float = 3.0,
        topology_check_s: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._endpoints = endpoints
        self._prefix = prefix
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._size_of = size_of
        self._max_stale_s = max_stale_s
        self._heartbeat_s = heartbeat_s
        self._dead_after_s = dead_after_s
        self._topology_check_s = topology_check_s
        self._clock = clock
        self._entries: dict[str, V] = {}
        self._sizes: dict[str, int] = {}
        self.size_bytes = 0
        """What the entries held now cost, as counted against `max_bytes`."""
        self._fresh_until = -math.inf
        self._seq = 0
        self._flushed_seq = 0
        self._fills: collections.Counter[str] = collections.Counter()
        self._dirty: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._trackers: list[_Tracker] = []
        self._closing = False
        self.flushes = 0
        """How many times everything was dropped (a reconnection or a FLUSHALL)."""
        self._listeners: list[Callable[[list[str] | None], None]] = []

    # -- reads and fills -------------------------------------------------------

    def lookup(self, key: str) -> V | None:
        """The cached value of `key`, if there is one and the cache is known fresh."""
        if self._clock() > self._fresh_until:
            return None
        return self._entries.get(key)

    def begin(self, key: str) -> Fill | None:
        """Take before reading `key` from Redis; None while the cache cannot be trusted."""
        if self._clock() > self._fresh_until:
            return None
        self._seq += 1
        self._fills[key] += 1
        return Fill(key, self._seq)

    def store(self, fill: Fill | None, value: V) -> None:
        """Keep `value` unless its key was invalidated after `fill` was taken."""
        if fill is not None and self._settle(fill):
            self._keep(fill.key, value)

    def abandon(self, fill: Fill | None) -> None:
        """Give `fill` back unused: what was read is not to be kept (nothing was found)."""
        if fill is not None:
            self._settle(fill)

    def _settle(self, fill: Fill) -> bool:
        """Retire `fill`; whether its key is still unchanged since it was taken."""
        key = fill.key
        self._fills[key] -= 1
        fresh = fill.seq > self._flushed_seq and self._dirty.get(key, -1) < fill.seq
        if self._fills[key] <= 0:
            del self._fills[key]
            self._dirty.pop(key, None)
        return fresh

    def _keep(self, key: str, value: V) -> None:
        """Store, first making room: the oldest stored leave until both bounds hold."""
        self._drop(key)
        size = len(key) + self._size_of(value) + ENTRY_OVERHEAD_BYTES
        if size > self._max_bytes:
            return
        while self._entries and (
            len(self._entries) >= self._max_entries or self.size_bytes + size > self._max_bytes
        ):
            self._drop(next(iter(self._entries)))
        self._entries[key] = value
        self._sizes[key] = size
        self.size_bytes += size

    def _drop(self, key: str) -> None:
        if key in self._entries:
            del self._entries[key]
            self.size_bytes -= self._sizes.pop(key)

    def __len__(self) -> int:
        return len(self._entries)

    # -- invalidation ----------------------------------------------------------

    def listen(self, listener: Callable[[list[str] | None], None]) -> None:
        """Call `listener` with the keys of every invalidation (None: everything may have
        changed, after a flush), after the cache has dropped them: what pushes changes to
        WatchTuningJob streams (service.watch). It runs on the tracking task: keep it short."""
        self._listeners.append(listener)

    def _invalidated(self, keys: list[bytes] | None) -> None:
        self._seq += 1
        if keys is None:
            self._flush()
            return
        names = [raw.decode() for raw in keys]
        for key in names:
            self._drop(key)
            if key in self._fills:
                self._dirty[key] = self._seq
        for listener in self._listeners:
            listener(names)

    def _flush(self) -> None:
        self._seq += 1
        self._entries.clear()
        self._sizes.clear()
        self.size_bytes = 0
        self._flushed_seq = self._seq
        self._fresh_until = -math.inf
        self.flushes += 1
        for listener in self._listeners:
            listener(None)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Begin tracking in the background; until connected, every lookup misses."""
        self._task = asyncio.create_task(self._run(), name="near-cache")

    async def aclose(self) -> None:
        """Stop tracking and empty the cache.

        Closing is asked for, and the tracking connections are closed under the readers'
        feet, rather than relying on cancellation alone: redis-py (8.1) can swallow a
        cancellation that lands while a connection is being set up. Cancellation remains
        the fallback, repeated until the task ends.
        """
        self._closing = True
        for tracker in self._trackers:
            await tracker.aclose()
        task = self._task
        if task is not None:
            await asyncio.wait([task], timeout=CLOSE_TIMEOUT_S)
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._flush()

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            try:
                await self._track_once()
            except (redis_errors.RedisError, OSError, _Stalled) as exc:
                if self._closing:
                    break
                log.warning("near cache: tracking lost (%s); reads go to Redis meanwhile", exc)
            self._flush()
            await asyncio.sleep(RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)])
            failures += 1

    async def _track_once(self) -> None:
        addresses = await self._endpoints.primaries()
        trackers = [_Tracker(self._endpoints, a, self._prefix, self._clock) for a in addresses]
        self._trackers = trackers
        try:
            for tracker in trackers:
                if self._closing:
                    return
                await tracker.open()
            async with asyncio.TaskGroup() as group:
                for tracker in trackers:
                    group.create_task(tracker.listen(self._invalidated))
                group.create_task(self._beat(trackers))
        except* (redis_errors.RedisError, OSError, _Stalled) as errors:
            raise errors.exceptions[0] from None
        finally:
            for tracker in trackers:
                await tracker.aclose()

    async def _beat(self, trackers: list[_Tracker]) -> None:
        """Ping every primary; extend freshness by what they answered; give up on silence.

        On closing, closes the connections, which ends the readers.
        """
        try:
            await self._pings(trackers)
        finally:
            if self._closing:
                for tracker in trackers:
                    await tracker.aclose()

    async def _pings(self, trackers: list[_Tracker]) -> None:
        started = self._clock()
        while not self._closing:
            for tracker in trackers:
                await tracker.ping()
            acked = min(t.acked_at for t in trackers)
            self._fresh_until = acked + self._max_stale_s
            now = self._clock()
            if now - acked > self._dead_after_s:
                raise _Stalled(f"no answer to pings for {now - acked:.1f}s")
            if now - started > self._topology_check_s:
                if await self._topology_changed(trackers):
                    raise _Stalled("the cluster's primaries changed")
                started = now
            await asyncio.sleep(self._heartbeat_s)

    async def _topology_changed(self, trackers: list[_Tracker]) -> bool:
        return set(await self._endpoints.primaries()) != {t.address for t in trackers}


class _Stalled(Exception):
    """The tracking connections can no longer be trusted."""
