"""The same code on a real Redis Cluster: every script's keys share one hash slot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.redis_client import connect
from devstack.redis_cluster import RedisCluster
from tests.harness import State, running_system


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as running:
        yield running


async def test_jobs_run_end_to_end_on_a_redis_cluster(
    cluster: RedisCluster, prefix: str, tmp_path: Path
) -> None:
    client = connect(cluster.url, cluster=True)
    async with running_system(client, cluster.url, prefix, tmp_path, redis_cluster=True) as s:
        jobs = {tenant: await s.create(tenant, request_id="r-1") for tenant in ("team-a", "team-b")}
        assert (await s.create("team-a", request_id="r-1")).name == jobs["team-a"].name
        for tenant, job in jobs.items():
            done = await s.finish_training(job.name, tenant)
            assert done.state == State.SUCCEEDED and done.snapshots
        cancelled = await s.create("team-a")
        await s.cancel(cancelled.name)
        page = await s.list_jobs("team-a", page_size=1)
        assert len(page.tuning_jobs) == 1 and page.next_page_token
        await s.delete(jobs["team-a"].name)
        assert [j.name for j in (await s.list_jobs("team-a")).tuning_jobs] == [cancelled.name]
    await client.aclose()
