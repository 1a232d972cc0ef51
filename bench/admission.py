"""Admission throughput: one worker starting 10,000 queued jobs of 10 tenants.

Setup (not measured): the jobs are created through the real API, 1,000 per tenant, and
wait in their tenants' queues; no worker runs yet. Measured: one worker process starts
and admits and submits them; the figure is jobs submitted upstream per second (the
emulator's count of creates) from the worker's start until the last one is in. The
jobs' first poll is an hour away, so the worker's whole effort goes into admission and
submission. Two runs: the upstream unlimited (against a stated bound of 100 jobs/s; a
worker admitting one job per tenant per turn of its loop took 490 s for 10,000), and a
fleet budget of `LIMITED_RPS` requests/s (each submission is one create, so against the
budget itself: goal >= 0.8 of it).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from bench.figure import Figure, figure, table
from bench.stack import TENANT, bench_stack
from bench.tracking import create_jobs, read_stats, wait_until
from devstack.launcher import EmulatorOptions

JOBS = 10_000
TENANTS = 10
LIMITED_JOBS = 2_000
LIMITED_RPS = 100.0
UNLIMITED_BOUND_PER_S = 100.0
TIMEOUT_S = 600.0
NO_POLL_S = 3600.0


async def submitted_per_s(jobs: int, *, upstream_rps: float) -> tuple[float, float]:
    """Jobs submitted upstream per second by one worker, and the seconds it took."""
    tenants = [TENANT, *(f"team-{n}" for n in range(1, TENANTS))]
    emulator = EmulatorOptions(steps_per_second=0.001)
    async with (
        bench_stack(
            extra_tenants=tenants[1:],
            emulator=emulator,
            upstream_rps=upstream_rps,
            poll_min_s=NO_POLL_S,
            poll_max_s=NO_POLL_S,
        ) as stack,
        httpx.AsyncClient(base_url=stack.emulator_url, timeout=30.0) as http,
    ):
        await create_jobs(stack, jobs // TENANTS, tenants)
        total = jobs // TENANTS * TENANTS

        async def all_submitted() -> bool:
            return int((await read_stats(http))["creates"]) >= total

        started = time.monotonic()
        await stack.start_worker(name="admission")
        await wait_until(all_submitted, TIMEOUT_S, f"{total} jobs submitted", interval_s=0.2)
        elapsed_s = time.monotonic() - started
    return total / elapsed_s, elapsed_s


async def measure(jobs: int = JOBS, limited_jobs: int = LIMITED_JOBS) -> list[Figure]:
    unlimited, unlimited_s = await submitted_per_s(jobs, upstream_rps=0.0)
    limited, limited_s = await submitted_per_s(limited_jobs, upstream_rps=LIMITED_RPS)
    return [
        figure(
            f"admission, upstream unlimited ({jobs} jobs, {TENANTS} tenants)",
            "jobs/s",
            unlimited,
            UNLIMITED_BOUND_PER_S,
            "ratio >= 1.0",
            lambda ratio: ratio >= 1.0,
            seconds=round(unlimited_s, 1),
        ),
        figure(
            f"admission, budget {LIMITED_RPS:g} req/s ({limited_jobs} jobs)",
            "jobs/s",
            limited,
            LIMITED_RPS,
            "ratio >= 0.8",
            lambda ratio: ratio >= 0.8,
            seconds=round(limited_s, 1),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=JOBS, help=f"queued jobs ({JOBS})")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.jobs))
    print(table(figures))
    for each in figures:
        print(each.name, each.details)


if __name__ == "__main__":
    main()
