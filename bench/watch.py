"""Watchers: 5,000 WatchTuningJob streams on one API replica, what they cost it, and how
soon a worker's write reaches them.

Setup (not measured): JOBS jobs are created through the API and written RUNNING (no
worker runs: this process plays one, below), and WATCHERS streams are opened on them,
WATCHERS / JOBS per job, from this process over CHANNELS connections, OPEN_BATCH at a
time; each stream has sent its first answer before anything is measured.

Measured:

- idle CPU: the API process's user plus system CPU time (/proc/<pid>/stat) over IDLE_S
  with every stream open and nothing written, as a share of one core, against a stated
  0.1 core. The heartbeat is the default's, so about IDLE_S / HEARTBEAT_S heartbeats per
  stream are in the window: an idle watch costs its heartbeats and nothing else.
- write-to-watcher delay: every job written ROUNDS times through `JobStore.save` (the
  compare-and-set script a worker's poll runs, from this process, which plays the
  worker) with one more completed step, paced at WRITES_PER_S, what a fleet polling
  JOBS jobs every JOBS / WRITES_PER_S seconds writes. A write's delay to a watcher is
  from the moment its save was sent to the moment that watcher's stream delivered the
  job with the new step; p50 and p99 over every (write, watcher) pair, against a
  baseline measured in the same run: the same writes with ONE watcher per job. The
  bound is 100 ms at p99 for the 5,000.
- busy CPU: the API's CPU over the rounds, per delivered answer (ms), in the details.

The watchers run in this process on the same two cores as the API and Redis, so the
delays include the client's own work of reading 5,000 streams: the figure is an upper
bound of what the API adds.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from bench.figure import Figure, figure
from bench.proc import cpu_seconds
from bench.rpc import job_request
from bench.stack import bench_stack
from bench.tracking import wait_until
from core.domain.job import Progress
from core.domain.states import JobState
from core.redis.client import connect
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from devstack.launcher import LocalSystem
from tuning.v1 import tuning_service_pb2, tuning_service_pb2_grpc

JOBS = 1_000
WATCHERS = 5_000
CHANNELS = 8
OPEN_BATCH = 250
"""Streams opened at once. grpcio's server cancels some of a few thousand streams opened
on its connections in the same instant, before any handler runs (CANCELLED, seen from
4,000 at once on this machine); clients of a real fleet connect over time, and a client
refused so retries."""
IDLE_S = 15.0
HEARTBEAT_S = 15.0
"""TUNING_WATCH_HEARTBEAT_S's default."""
ROUNDS = 2
WRITES_PER_S = 200.0
IDLE_CPU_GOAL = 0.1
P99_BOUND_MS = 100.0
DELIVERY_TIMEOUT_S = 60.0


@dataclass
class Watchers:
    """Open streams, and when each delivered each step of its job."""

    arrivals: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    first_answers: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def follow(self, call: grpc.aio.UnaryStreamCall[object, object]) -> None:
        first = True
        async for answer in call:
            now = time.monotonic()
            assert isinstance(answer, tuning_service_pb2.WatchTuningJobResponse)
            if not answer.HasField("job"):
                continue
            key = (answer.job.name, answer.job.progress.completed_steps)
            self.arrivals.setdefault(key, []).append(now)
            self.first_answers += first
            first = False


async def measure() -> list[Figure]:
    async with bench_stack(
        workers=0,
        watch_heartbeat_s=HEARTBEAT_S,
        tenant_max_watches=WATCHERS,
        max_watches=WATCHERS * 2,
    ) as system:
        names = await _create_jobs(system, JOBS)
        await _write_all(system, names, 0, pace=False)  # RUNNING, as polls write
        baseline = await _delays(system, names, per_job=1)
        ours = await _delays(system, names, per_job=WATCHERS // JOBS)
    p99, base_p99 = ours.p99_ms, baseline.p99_ms
    return [
        figure(
            "watch: 5,000 idle streams, API CPU",
            "core",
            ours.idle_cpu,
            IDLE_CPU_GOAL,
            f"<= {IDLE_CPU_GOAL:g} core",
            lambda ratio: ratio <= 1.0,
            idle_s=IDLE_S,
            heartbeat_s=HEARTBEAT_S,
            baseline_idle_cpu=baseline.idle_cpu,
        ),
        figure(
            f"watch: write to 5,000 at {WRITES_PER_S:g}/s p99",
            "ms",
            p99,
            base_p99,
            f"<= {P99_BOUND_MS:g} ms",
            lambda _ratio: p99 <= P99_BOUND_MS,
            p50_ms=ours.p50_ms,
            baseline_p50_ms=baseline.p50_ms,
            deliveries=ours.deliveries,
            api_cpu_ms_per_delivery=ours.cpu_ms_per_delivery,
        ),
    ]


@dataclass(frozen=True)
class Delays:
    p50_ms: float
    p99_ms: float
    deliveries: int
    idle_cpu: float
    cpu_ms_per_delivery: float


async def _delays(system: LocalSystem, names: Sequence[str], *, per_job: int) -> Delays:
    """Open `per_job` streams on each job, then measure idle CPU and write delays."""
    pid = system.pids["api"]
    channels = [grpc.aio.insecure_channel(system.api_target) for _ in range(CHANNELS)]
    watchers = Watchers()
    try:
        await _open(watchers, channels, system, names, per_job)
        before = cpu_seconds(pid)
        await asyncio.sleep(IDLE_S)
        idle_cpu = (cpu_seconds(pid) - before) / IDLE_S
        delays, cpu_s = await _rounds(system, names, watchers, per_job)
    finally:
        for task in watchers.tasks:
            task.cancel()
        await asyncio.gather(*watchers.tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()
    ms = sorted(d * 1000 for d in delays)
    return Delays(
        p50_ms=statistics.median(ms),
        p99_ms=ms[int(len(ms) * 0.99) - 1],
        deliveries=len(ms),
        idle_cpu=idle_cpu,
        cpu_ms_per_delivery=cpu_s * 1000 / max(len(ms), 1),
    )


async def _open(
    watchers: Watchers,
    channels: Sequence[grpc.aio.Channel],
    system: LocalSystem,
    names: Sequence[str],
    per_job: int,
) -> None:
    """Open the streams OPEN_BATCH at a time, each batch's first answers awaited."""
    wanted = [name for name in names for _ in range(per_job)]
    for n, name in enumerate(wanted):
        stub: tuning_service_pb2_grpc.TuningServiceAsyncStub = (
            tuning_service_pb2_grpc.TuningServiceStub(channels[n % len(channels)])
        )
        request = tuning_service_pb2.WatchTuningJobRequest(name=name)
        call = stub.WatchTuningJob(request, metadata=system.metadata)
        watchers.tasks.append(asyncio.create_task(watchers.follow(call)))  # type: ignore[arg-type]
        if (n + 1) % OPEN_BATCH == 0 or n + 1 == len(wanted):
            await _until(lambda n=n: watchers.first_answers >= n + 1, "first answers")


async def _rounds(
    system: LocalSystem, names: Sequence[str], watchers: Watchers, per_job: int
) -> tuple[list[float], float]:
    """Write every job ROUNDS times, as a worker's poll would; each delivery's delay."""
    pid = system.pids["api"]
    sent: dict[tuple[str, int], float] = {}
    before = cpu_seconds(pid)
    first_step = 1 + max((step for _, step in watchers.arrivals), default=0)
    for step in range(first_step, first_step + ROUNDS):
        sent |= await _write_all(system, names, step)
        await _until(
            lambda s=step: (
                sum(len(watchers.arrivals.get((n, s), [])) for n in names) >= len(names) * per_job
            ),
            f"round {step} delivered",
        )
    cpu_s = cpu_seconds(pid) - before
    delays = [at - sent[key] for key, ats in watchers.arrivals.items() if key in sent for at in ats]
    return delays, cpu_s


async def _write_all(
    system: LocalSystem, names: Sequence[str], step: int, *, pace: bool = True
) -> dict[tuple[str, int], float]:
    """Each job saved RUNNING at `step` completed steps (WRITES_PER_S of them a second, if
    paced); when each save was sent."""
    redis = connect(system.settings.redis_url, timeout_s=30.0)
    store = JobStore(redis, Keys(system.settings.redis_key_prefix))
    sent = {}
    start = time.monotonic()
    try:
        for n, name in enumerate(names):
            if pace:
                await asyncio.sleep(max(start + n / WRITES_PER_S - time.monotonic(), 0.0))
            current = await store.read(system.tenant.id, name.removeprefix("tuningJobs/"))
            assert current is not None
            progress = Progress(completed_steps=step, total_steps=10)
            sent[(name, step)] = time.monotonic()
            await store.save(
                current, current.job.replace(state=JobState.RUNNING, progress=progress)
            )
    finally:
        await redis.aclose()
    return sent


async def _create_jobs(system: LocalSystem, count: int) -> list[str]:
    async with grpc.aio.insecure_channel(system.api_target) as channel:
        stub: tuning_service_pb2_grpc.TuningServiceAsyncStub = (
            tuning_service_pb2_grpc.TuningServiceStub(channel)
        )
        names = []
        for _ in range(count):
            job = await stub.CreateTuningJob(job_request(), metadata=system.metadata)
            names.append(job.name)
        return names


async def _until(check: object, what: str) -> None:
    """Until `check()` (a lambda binding its loop's values as defaults, which mypy cannot
    type as a Callable) is true, looked at every 10 ms."""
    assert callable(check)

    async def asked() -> bool:
        return bool(check())

    await wait_until(asked, DELIVERY_TIMEOUT_S, what, interval_s=0.01)
