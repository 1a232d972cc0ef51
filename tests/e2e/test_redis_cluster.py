"""The same code on a real Redis Cluster: every script's keys share one hash slot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from redis.crc import key_slot

from core.redis.client import RedisEndpoints, connect
from devstack.redis_cluster import RedisCluster
from service.near_cache import NearCache
from tests.harness import State, System, running_system
from tuning.v1 import tuning_service_pb2, tuning_service_pb2_grpc


async def test_jobs_run_end_to_end_on_a_redis_cluster(
    cluster: RedisCluster, prefix: str, tmp_path: Path
) -> None:
    client = connect(cluster.url, cluster=True)
    try:
        async with running_system(client, cluster.url, prefix, tmp_path, redis_cluster=True) as s:
            tenants = ("team-a", "team-b")
            jobs = {tenant: await s.create(tenant, request_id="r-1") for tenant in tenants}
            assert (await s.create("team-a", request_id="r-1")).name == jobs["team-a"].name
            watched = asyncio.create_task(_states_watched(s, jobs["team-b"].name, "team-b"))
            for tenant, job in jobs.items():
                done = await s.finish_training(job.name, tenant)
                assert done.state == State.SUCCEEDED and done.snapshots
            states = await asyncio.wait_for(watched, 10)  # pushed from the cluster's writes
            assert states[-1] == State.SUCCEEDED and State.RUNNING in states
            cancelled = await s.create("team-a")
            await s.cancel(cancelled.name)
            page = await s.list_jobs("team-a", page_size=1)
            assert len(page.tuning_jobs) == 1 and page.next_page_token
            await s.delete(jobs["team-a"].name)
            assert [j.name for j in (await s.list_jobs("team-a")).tuning_jobs] == [cancelled.name]
            # A finished job read now is kept by the near cache (an earlier copy may have
            # been dropped by the worker's last write, its lease's release).
            await s.get(jobs["team-b"].name, "team-b")
            cache = s.api.status_cache
            assert cache is not None and len(cache) > 0  # reads are served by the near cache
    finally:
        await client.aclose()


async def _states_watched(system: System, name: str, tenant: str) -> list[int]:
    """The states a WatchTuningJob stream of `name` sent, until it ended."""
    stub: tuning_service_pb2_grpc.TuningServiceAsyncStub = (
        tuning_service_pb2_grpc.TuningServiceStub(system.channel)
    )
    request = tuning_service_pb2.WatchTuningJobRequest(name=name)
    call = stub.WatchTuningJob(request, metadata=system.auth(tenant), timeout=30)
    return [answer.job.state async for answer in call if answer.HasField("job")]


async def test_the_near_cache_hears_writes_on_every_primary(
    cluster: RedisCluster, prefix: str
) -> None:
    endpoints = RedisEndpoints(cluster.url, cluster=True)
    assert len(await endpoints.primaries()) == 3
    client = connect(cluster.url, cluster=True)
    cache: NearCache[str] = NearCache(endpoints, f"{prefix}:", heartbeat_s=0.05)
    await cache.start()
    try:
        keys = [f"{prefix}:{{t.tenant-{n}}}:job:1" for n in range(24)]  # spread over slots
        assert len({key_slot(k.encode()) * 3 // 16384 for k in keys}) == 3
        await asyncio.wait_for(_until(lambda: cache.begin("probe") is not None), 5.0)
        for key in keys:
            await client.set(key, "RUNNING")
        await asyncio.sleep(0.1)  # the invalidations of those first writes pass
        for key in keys:
            cache.store(cache.begin(key), "RUNNING")
        assert all(cache.lookup(k) == "RUNNING" for k in keys)
        for key in keys:
            await client.set(key, "SUCCEEDED")
        await asyncio.wait_for(_until(lambda: all(cache.lookup(k) is None for k in keys)), 1.0)
    finally:
        await cache.aclose()
        await client.aclose()


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(100_000):  # the caller's wait_for bounds the time
        if check():
            return
        await asyncio.sleep(0.005)
