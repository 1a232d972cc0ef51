"""Redis memory per job: a unit of the capacity model (docs/capacity.md).

JOBS jobs are stored as the API stores them (`JobStore.create`, the CREATE script: the
record, its examples, the tenant's index, queue and counts), each with EXAMPLES inline
examples of about EXAMPLE_CHARS characters; then every one is saved RUNNING as a worker's
polls leave it (`JobStore.save`, SAVE: its state counts, its events stream, a loss
snapshot per poll, POLLS polls). Redis's `used_memory` before and after each phase,
divided by the jobs, against the bytes the job itself is (its record's JSON and its
encoded examples): what Redis's keys, hashes, sets and streams add around them.

Figures: memory per queued job and per running job, bound: at most 3x the job's bytes
(the overhead of small keys in Redis is about 50-100 bytes each). The details hold the
bytes per job and per example byte, which docs/capacity.md and `bench.capacity` use.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable

from bench.figure import Figure, figure, table
from core.domain.job import Job, Progress, encode_pairs
from core.domain.snapshots import Snapshot
from core.domain.states import JobState
from core.redis.client import Redis, connect
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from devstack.redis_server import RedisServer

JOBS = 2_000
EXAMPLES = 20
EXAMPLE_CHARS = 200
POLLS = 10
OVERHEAD_BOUND = 3.0
TENANTS = 10


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


def job_of(n: int) -> tuple[Job, bytes]:
    tenant = f"team-{n % TENANTS}"
    text = ("x" * (EXAMPLE_CHARS // 2 - 4)) + f"{n:04d}"
    pairs = [f"{text} {k}" for k in range(EXAMPLES)]
    examples = encode_pairs(pairs, pairs)
    job = Job(
        id=f"j{n:019d}",
        tenant=tenant,
        base_model="models/gemini-1.5-flash-001-tuning",
        display_name=f"job {n}",
        example_count=EXAMPLES,
    )
    return job, examples


async def create_all(store: JobStore, count: int) -> float:
    """Store `count` jobs; the mean bytes of a job as the API holds it."""
    sizes = []
    for n in range(count):
        job, examples = job_of(n)
        await store.create(job, examples)
        sizes.append(len(job.to_json()) + len(examples))
    return sum(sizes) / len(sizes)


async def run_all(store: JobStore, count: int, polls: int) -> float:
    """Every job saved RUNNING, then polled `polls` times, a snapshot each; the mean bytes
    of its final record."""
    total = 0
    for n in range(count):
        job, _ = job_of(n)
        for poll in range(polls + 1):
            current = await store.read(job.tenant, job.id)
            assert current is not None
            snapshots = tuple(
                Snapshot(step=s, epoch=1, mean_loss=1.0 / s) for s in range(1, poll + 1)
            )
            new = current.job.replace(
                state=JobState.RUNNING,
                progress=Progress(completed_steps=poll, total_steps=polls),
                snapshots=snapshots,
                tuned_model=f"tunedModels/tj-{n:019d}",
            )
            await store.save(current, new)
        total += len(new.to_json())
    return total / count


async def measure(jobs: int = JOBS, polls: int = POLLS) -> list[Figure]:
    with RedisServer() as server:
        redis = connect(server.url, timeout_s=30.0)
        try:
            store = JobStore(redis, Keys("bench:"))
            empty = await used_memory(redis)
            queued_bytes = await create_all(store, jobs)
            queued = await used_memory(redis)
            running_bytes = await run_all(store, jobs, polls)
            running = await used_memory(redis)
        finally:
            await redis.aclose()
    per_queued = (queued - empty) / jobs
    per_running = (running - empty) / jobs
    example_bytes = len(job_of(0)[1])
    return [
        figure(
            "redis: memory per queued job",
            "B",
            per_queued,
            queued_bytes,
            f"ratio <= {OVERHEAD_BOUND:g} (bound)",
            lambda r: r <= OVERHEAD_BOUND,
            jobs=jobs,
            examples_per_job=EXAMPLES,
            example_bytes_per_job=example_bytes,
            job_bytes=queued_bytes,
        ),
        figure(
            "redis: memory per running job",
            "B",
            per_running,
            running_bytes + example_bytes,
            f"ratio <= {OVERHEAD_BOUND:g} (bound)",
            lambda r: r <= OVERHEAD_BOUND,
            jobs=jobs,
            polls_per_job=polls,
            record_bytes=running_bytes,
        ),
    ]


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--polls", type=int, default=POLLS)
    args = parser.parse_args(None if argv is None else list(argv))
    found = asyncio.run(measure(args.jobs, args.polls))
    print(table(found))
    for f in found:
        print(f"{f.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in f.details.items()))


if __name__ == "__main__":
    main()
