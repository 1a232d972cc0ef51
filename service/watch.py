"""WatchTuningJob: a job's changes pushed to its watchers, from Redis, never the upstream.

Where the pushes come from: the status cache's own change notices. Every API replica
already holds a tracking connection to each Redis primary (service.near_cache, Redis
client tracking in BCAST mode), on which Redis names every tenant-scoped key written by
anyone, a worker's poll included, within the write's own event-loop turn. The cache hands
each notice to the `WatchHub` too, which wakes the watchers of that key. So a watch costs
no Redis connection, subscription or command of its own while nothing changes, works the
same across replicas and on Redis Cluster (one tracking connection per primary), and a
thousand watchers of one job cost one Redis read per change: the first re-read fills the
cache, the others hit it. The alternatives were weighed: pub/sub would need every script
that writes a job to PUBLISH (and on Cluster before 7.0 a publish reaches every node),
keyspace notifications need a server setting managed Redis may not allow, and a stream
per job is a history this call does not need (`after_version` resumes from the current
record, below).

What a watcher does: read the job (the status cache's answer, so the same bytes as
GetTuningJob), send it, and wait until its key (or, while QUEUED, its tenant's queue,
which moves its place) is written, or `heartbeat_s` passes. Then read again, and send the
job only if something a watcher sees changed (`_seen`: state, progress, snapshots,
checkpoints, the model, error, queue place, wait reason); a poll that found nothing new
writes the record (its fetch time) but sends nothing. An idle stream sends a heartbeat
every `heartbeat_s`, and every READ_EVERY_HEARTBEATS-th one also re-reads the job
whatever the notices said, so even a tracking connection that fails silently leaves a
watcher at most that far behind (a minute by default). After a
terminal state is sent the stream ends, OK; a deleted job ends it NOT_FOUND.

Resuming: each answer carries the record's `version` (the store's compare-and-set counter,
grown by every write). A watcher that reconnects with `after_version` gets the job at once
only if its version is newer, or if it is QUEUED (its place in the queue moves with writes
to other jobs, not to its own record, so the version cannot tell). No history of the
versions in between is kept: what a watcher missed arrives as the job as it is now, whose
snapshots and checkpoints hold every step it missed.

With the status cache off there are no notices: watchers re-read every `poll_s`. A replica
that is shutting down (`WatchHub.drain`) ends every stream UNAVAILABLE (SERVER_DRAINING)
with a short RetryInfo, so clients reconnect to another replica and resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from typing import Any

from core.domain.job import Job
from core.domain.states import JobState
from core.errors import Reason, ResourceExhausted, Unavailable
from core.redis.keys import Keys
from service.jobs_api import job_id_of
from service.status import Current, StatusReader
from tuning.v1 import tuning_service_pb2

MAX_CONCURRENT_READS = 32
"""Jobs re-read at once for their watchers, per replica (the rest wait their turn)."""
READ_EVERY_HEARTBEATS = 4
"""With change notices, an idle stream re-reads its job at every 4th heartbeat (a minute,
by default), not at each: the notices say when it changed, and the re-read only bounds
how far behind a tracking connection that fails silently can leave a watcher."""
DRAIN_RETRY_S = 0.1
"""RetryInfo of a stream ended by a drain: reconnect at once, to another replica."""
REFUSED_RETRY_S = 5.0
REPLICA_SUBJECT = "replica:watches"


class WatchHub:
    """Wakes the watchers of keys when Redis says the keys changed; bounds the watchers.

    One per API process, fed by the status cache (`NearCache.listen`); one event loop, so
    no lock."""

    def __init__(self, *, per_tenant: int, per_replica: int) -> None:
        self._per_tenant = per_tenant
        self._per_replica = per_replica
        self._by_key: dict[str, set[asyncio.Event]] = {}
        self._open: Counter[str] = Counter()
        self._all: set[asyncio.Event] = set()
        self.draining = False

    @contextlib.contextmanager
    def watching(self, tenant: str, keys: Sequence[str]) -> Iterator[asyncio.Event]:
        """An event set whenever one of `keys` changes, while the block runs;
        RESOURCE_EXHAUSTED (TOO_MANY_WATCHES) if the tenant or replica has its most."""
        self._check(tenant)
        event = asyncio.Event()
        self._open[tenant] += 1
        self._all.add(event)
        for key in keys:
            self._by_key.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            self._forget(tenant, keys, event)

    def changed(self, keys: list[str] | None) -> None:
        """Wake the watchers of `keys` (None: all of them, the cache was emptied)."""
        if keys is None:
            self._wake_all()
            return
        for key in keys:
            for event in self._by_key.get(key, ()):
                event.set()

    def drain(self) -> None:
        """End every stream: the replica is shutting down."""
        self.draining = True
        self._wake_all()

    def __len__(self) -> int:
        return len(self._all)

    def _wake_all(self) -> None:
        for event in self._all:
            event.set()

    def _check(self, tenant: str) -> None:
        if self.draining:
            raise _draining()
        if len(self._all) >= self._per_replica:
            raise ResourceExhausted(
                f"this replica serves {self._per_replica} watches, its most; retry shortly",
                retry_after_s=REFUSED_RETRY_S,
                reason=Reason.TOO_MANY_WATCHES,
                subject=REPLICA_SUBJECT,
            )
        if self._open[tenant] >= self._per_tenant:
            raise ResourceExhausted(
                f"tenant {tenant!r} has {self._per_tenant} watches open on this replica, "
                "its most; close one first",
                retry_after_s=REFUSED_RETRY_S,
                reason=Reason.TOO_MANY_WATCHES,
                subject=f"tenant:{tenant}",
            )

    def _forget(self, tenant: str, keys: Sequence[str], event: asyncio.Event) -> None:
        self._all.discard(event)
        self._open[tenant] -= 1
        if not self._open[tenant]:
            del self._open[tenant]
        for key in keys:
            waiting = self._by_key.get(key)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._by_key[key]


class Watches:
    """WatchTuningJob's behaviour, behind the thin servicer."""

    def __init__(
        self,
        status: StatusReader,
        keys: Keys,
        hub: WatchHub,
        *,
        heartbeat_s: float,
        poll_s: float | None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[float], float] = lambda most: random.uniform(0.0, most / 2),
    ) -> None:
        self._jitter = jitter
        self._status = status
        self._keys = keys
        self._hub = hub
        self._heartbeat_s = heartbeat_s
        self._poll_s = poll_s
        """None: change notices arrive (the status cache is on); else re-read this often."""
        self._clock = clock
        self._monotonic = monotonic
        self._reading: dict[tuple[str, str], asyncio.Future[Current]] = {}
        self._read_slots = asyncio.Semaphore(MAX_CONCURRENT_READS)

    async def watch(
        self, tenant: str, request: tuning_service_pb2.WatchTuningJobRequest
    ) -> AsyncGenerator[tuning_service_pb2.WatchTuningJobResponse | bytes]:
        """The job now (if newer than `after_version`), then each change, then the end;
        a job's answers come serialized already (`job_answer`)."""
        job_id = job_id_of(request.name)
        keys = (self._keys.job(tenant, job_id), self._keys.tenant_queue(tenant))
        with self._hub.watching(tenant, keys) as changed:
            current = await self._current(tenant, job_id)
            # Heartbeats spread out: streams opened together (a reconnect storm after a
            # drain) would otherwise all beat in the same instant, every interval.
            seen, sent_at = _seen(current), self._monotonic() - self._jitter(self._heartbeat_s)
            # A QUEUED job's place moves with no write to its record: sent on every resume.
            if current.version > request.after_version or current.job.state is JobState.QUEUED:
                yield job_answer(current)
            beats = 0  # heartbeats sent since the job was last read
            while not current.job.state.terminal:
                notified = await self._wait(changed, sent_at)
                if notified or self._poll_s is not None or beats + 1 >= READ_EVERY_HEARTBEATS:
                    current, beats = await self._current(tenant, job_id), 0
                    if _seen(current) != seen:
                        seen, sent_at = _seen(current), self._monotonic()
                        yield job_answer(current)
                        continue
                if self._monotonic() - sent_at >= self._heartbeat_s:
                    sent_at, beats = self._monotonic(), beats + 1
                    yield self._heartbeat(current.version)

    async def _current(self, tenant: str, job_id: str) -> Current:
        """The job now, one read shared by every watcher of it that asks meanwhile.

        A write wakes all of a job's watchers at once; without sharing, each would read
        Redis (the status cache's entry was just dropped), and a wave of polls would open
        a connection per watcher. The shared read is shielded: a watcher that leaves does
        not cancel it for the others."""
        key = (tenant, job_id)
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(tenant, job_id))
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._read_done(key, done))
        return await asyncio.shield(reading)

    async def _read(self, tenant: str, job_id: str) -> Current:
        async with self._read_slots:  # however many jobs change at once
            return await self._status.current(tenant, job_id)

    def _read_done(self, key: tuple[str, str], done: asyncio.Future[Current]) -> None:
        del self._reading[key]
        if not done.cancelled():
            done.exception()  # retrieved: every watcher of it may have left

    async def _wait(self, changed: asyncio.Event, sent_at: float) -> bool:
        """Until a change notice (True), the next heartbeat, or (no notices) the next
        poll. A timeout on the waiting task itself, not `wait_for`'s task per wait: an
        idle stream waits once per heartbeat, thousands of them."""
        wait_s = max(self._heartbeat_s - (self._monotonic() - sent_at), 0.0)
        if self._poll_s is not None:
            wait_s = min(wait_s, self._poll_s)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await changed.wait()
        notified = changed.is_set()
        changed.clear()
        if self._hub.draining:
            raise _draining()
        return notified

    def _heartbeat(self, version: int) -> tuning_service_pb2.WatchTuningJobResponse:
        answer = tuning_service_pb2.WatchTuningJobResponse(version=version)
        answer.heartbeat.FromNanoseconds(int(self._clock() * 1e9))
        return answer


def _seen(current: Current) -> tuple[Any, ...]:
    """What a watcher sees change (a poll that found nothing new changes none of it)."""
    job: Job = current.job
    return (
        job.state,
        job.progress,
        len(job.snapshots),
        len(job.checkpoints),
        job.tuned_model,
        job.tuned_model_endpoint,
        job.error,
        job.waiting_for,
        job.data_stats,
        current.answer if job.state is JobState.QUEUED else b"",  # its queue place
    )


def job_answer(current: Current) -> bytes:
    """The WatchTuningJobResponse of `current`, serialized, the job in it the read's own
    bytes (a message's encoding is its fields' encodings, in any order): no parse and
    no serialization of the job per watcher, only this concatenation."""
    tail = tuning_service_pb2.WatchTuningJobResponse(version=current.version)
    return _JOB_FIELD_TAG + _varint(len(current.answer)) + current.answer + tail.SerializeToString()


_JOB_FIELD_TAG = bytes([(1 << 3) | 2])
"""`job = 1`, length-delimited (tuning_service.proto's WatchTuningJobResponse)."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _draining() -> Unavailable:
    return Unavailable(
        "this replica is shutting down; reconnect and resume with after_version",
        retry_after_s=DRAIN_RETRY_S,
        reason=Reason.SERVER_DRAINING,
    )
