"""The audit store on real Redis: newest first from a position, the exact cap, the
retention on read and on write, and the same on Redis Cluster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from core.redis.audit import AuditEntry, AuditStore, EntryId
from core.redis.client import Redis, connect
from core.redis.keys import Keys
from devstack.redis_cluster import RedisCluster

pytestmark = pytest.mark.timeout(30)


class ShiftedClock:
    """The real time, moved forward by hand (stream ids are Redis's real time)."""

    def __init__(self) -> None:
        self.ahead_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead_s


def entry(n: int, tenant: str = "team-a") -> AuditEntry:
    return AuditEntry(
        time_ms=n,
        principal=tenant,
        role="tenant",
        tenant=tenant,
        method="/tuning.v1.TuningService/CancelTuningJob",
        action="cancel_job",
        resource=f"tuningJobs/j{n}",
        outcome="OK",
        request_id=f"r-{n}",
        detail="",
    )


def store_of(redis: Redis, prefix: str, clock: ShiftedClock, **bounds: float) -> AuditStore:
    retention_s = bounds.get("retention_s", 3600.0)
    max_records = int(bounds.get("max_records", 100))
    return AuditStore(redis, Keys(prefix), clock, retention_s=retention_s, max_records=max_records)


async def test_pages_run_newest_first_from_a_position(redis: Redis, prefix: str) -> None:
    store = store_of(redis, prefix, ShiftedClock())
    for n in range(5):
        await store.append("team-a", entry(n))

    first = await store.page("team-a", before=None, inclusive=False, count=2)
    assert [e.request_id for _, e in first] == ["r-4", "r-3"]
    after = await store.page("team-a", before=first[-1][0], inclusive=False, count=10)
    assert [e.request_id for _, e in after] == ["r-2", "r-1", "r-0"]
    again = await store.page("team-a", before=first[-1][0], inclusive=True, count=1)
    assert [e.request_id for _, e in again] == ["r-3"]
    assert await store.page("team-b", before=None, inclusive=False, count=10) == []


async def test_the_cap_is_exact_and_old_records_are_neither_listed_nor_kept(
    redis: Redis, prefix: str
) -> None:
    clock = ShiftedClock()
    store = store_of(redis, prefix, clock, max_records=3, retention_s=60.0)
    for n in range(5):
        await store.append("team-a", entry(n))
    key = Keys(prefix).audit_records("team-a")
    assert await redis.xlen(key) == 3
    assert 0 < await redis.pttl(key) <= 60_000

    clock.ahead_s = 61.0  # the records are past the retention
    assert await store.page("team-a", before=None, inclusive=False, count=10) == []

    clock.ahead_s = 59.9  # what was written over 0.1 s ago is past it: trimmed at a write

    async def trimmed() -> bool:
        await store.append("team-a", entry(5))
        entries: Any = await redis.xrange(key)
        kept = [AuditEntry.from_json(fields[b"r"].decode()) for _, fields in entries]
        return {e.request_id for e in kept} == {"r-5"}

    async with asyncio.timeout(5.0):
        while not await trimmed():  # noqa: ASYNC110 (polling is the point)
            await asyncio.sleep(0.02)


def test_entry_ids_parse_only_their_shape() -> None:
    assert EntryId.parse("1700000000000-3") == EntryId(1_700_000_000_000, 3)
    assert EntryId.parse("1700000000000") is None
    assert EntryId.parse("-1-0") is None
    assert str(EntryId(5, 0)) == "5-0"


async def test_the_store_runs_on_redis_cluster(cluster: RedisCluster, prefix: str) -> None:
    client = connect(cluster.url, cluster=True)
    try:
        store = store_of(client, prefix, ShiftedClock(), max_records=2)
        for n in range(3):
            await store.append("team-a", entry(n))
            await store.append("team-b", entry(n, "team-b"))
        for tenant in ("team-a", "team-b"):
            page = await store.page(tenant, before=None, inclusive=False, count=10)
            assert [e.request_id for _, e in page] == ["r-2", "r-1"]
    finally:
        await client.aclose()
