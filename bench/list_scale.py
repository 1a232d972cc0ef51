"""A page of 50 from a tenant with 100,000 jobs, against the same page from one with 1,000.

Paging walks a per-tenant index from a cursor, so the big tenant's page should cost
about what the small tenant's does.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import grpc

from bench.figure import Figure, figure, table
from bench.stack import bench_stack
from core.domain.job import Job, encode_examples
from core.redis.client import connect
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from tuning.v1 import tuning_service_pb2

BIG, SMALL = "bench-team", "small-team"


async def fill(store: JobStore, tenant: str, count: int) -> None:
    content = encode_examples([])
    for start in range(0, count, 100):
        await asyncio.gather(
            *(
                store.create(Job(id=f"j{n:07d}", tenant=tenant, base_model="m"), content)
                for n in range(start, min(count, start + 100))
            )
        )


async def page_p50s(channel: grpc.aio.Channel, tenants: list[Any], samples: int) -> list[float]:
    """Median time of the first page of 50 for each tenant (by its metadata).

    The tenants' calls alternate, so a burst of other work on the machine falls on both.
    """
    call: Any = channel.unary_unary(
        "/tuning.v1.TuningService/ListTuningJobs",
        request_serializer=None,
        response_deserializer=None,
    )
    request = tuning_service_pb2.ListTuningJobsRequest(page_size=50).SerializeToString()
    times: list[list[float]] = [[] for _ in tenants]
    for _ in range(samples):
        for metadata, spent in zip(tenants, times, strict=True):
            started = time.perf_counter()
            await call(request, metadata=metadata)
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) for spent in times]


async def measure(big: int = 100_000, small: int = 1_000, samples: int = 300) -> list[Figure]:
    async with bench_stack(extra_tenants=[SMALL]) as stack:
        redis = connect(stack.settings.redis_url, timeout_s=30.0)
        store = JobStore(redis, Keys(stack.settings.redis_key_prefix))
        await fill(store, BIG, big)
        await fill(store, SMALL, small)
        await redis.aclose()
        async with grpc.aio.insecure_channel(stack.api_target) as channel:
            tenants = [stack.metadata, stack.metadata_of(SMALL)]
            await page_p50s(channel, tenants, 30)  # warm up
            ours, base = await page_p50s(channel, tenants, samples)
    return [
        figure(
            f"list page p50 ({big} vs {small})", "s", ours, base, "ratio <= 1.3", lambda r: r <= 1.3
        )
    ]


if __name__ == "__main__":
    print(table(asyncio.run(measure())))
