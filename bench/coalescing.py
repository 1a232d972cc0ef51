"""Coalescing: upstream status requests per job per poll interval, 1,000 pollers x 50 jobs.

However often callers ask, each running job should cost the upstream one status request
per poll interval.

Callers read a job's status from the platform (GetTuningJob answers from Redis); only the
workers ask the upstream, once per job per poll interval. The figure counts what reached
the upstream while 1,000 concurrent callers kept asking:

- **poll interval**: the worker's pause between two upstream status requests for one job.
  Here it is fixed (`poll_min_s = poll_max_s`, `poll_growth = 1`), so the ideal, the
  baseline, is exactly one upstream status request (`tunedModels.get` or `operations.get`)
  per job per interval: `jobs * window / interval` in all.
- **emulated time**: the clock of the emulated upstream. In the bench stack the emulator runs
  on the wall clock, so the window is real seconds, measured between two reads of the
  emulator's request counters (`GET /_emulator/stats`). Training is slowed down so that every
  job stays RUNNING for the whole window (checked before and after).

The fleet's own upstream rate limit is switched off (`upstream_rps = 0`) so that the figure
shows what coalescing does, not what a request budget would hide.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import httpx

from bench.figure import Figure, figure, table
from bench.rpc import job_request
from bench.stack import bench_stack
from devstack.launcher import EmulatorOptions, LocalSystem
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

STATUS_ROUTES = ("GET tunedModels.get", "GET operations.get")
SERVICE = "/tuning.v1.TuningService/"
# Slow enough that a job of `job_request()` (25 steps) trains for about 40 minutes.
SLOW_STEPS_PER_SECOND = 0.01
RUNNING_TIMEOUT_S = 120.0
Metadata = tuple[tuple[str, str], ...]


@dataclass
class PollCount:
    """GetTuningJob calls the pollers made during the window."""

    answered: int = 0
    failed: int = 0


@asynccontextmanager
async def channels(target: str, count: int) -> AsyncIterator[list[grpc.aio.Channel]]:
    """`count` channels to `target`, each on its own connection."""
    async with AsyncExitStack() as stack:
        options = [("grpc.use_local_subchannel_pool", 1)]
        yield [
            await stack.enter_async_context(grpc.aio.insecure_channel(target, options=options))
            for _ in range(count)
        ]


def get_job_call(channel: grpc.aio.Channel) -> Any:
    """GetTuningJob on `channel`, taking the job's name and answering the TuningJob."""
    return channel.unary_unary(
        SERVICE + "GetTuningJob",
        request_serializer=tuning_service_pb2.GetTuningJobRequest.SerializeToString,
        response_deserializer=tuning_job_pb2.TuningJob.FromString,
    )


async def create_jobs(channel: grpc.aio.Channel, metadata: Metadata, count: int) -> list[str]:
    """Create `count` jobs through the API; their names."""
    create: Any = channel.unary_unary(
        SERVICE + "CreateTuningJob",
        request_serializer=tuning_service_pb2.CreateTuningJobRequest.SerializeToString,
        response_deserializer=tuning_job_pb2.TuningJob.FromString,
    )
    jobs = await asyncio.gather(*(create(job_request(), metadata=metadata) for _ in range(count)))
    return [job.name for job in jobs]


async def states(
    channel: grpc.aio.Channel, metadata: Metadata, names: Sequence[str]
) -> list[tuning_job_pb2.TuningJob.State.ValueType]:
    """The state of each job, read through the API."""
    get = get_job_call(channel)
    jobs = await asyncio.gather(
        *(get(tuning_service_pb2.GetTuningJobRequest(name=n), metadata=metadata) for n in names)
    )
    return [job.state for job in jobs]


async def wait_running(
    channel: grpc.aio.Channel,
    metadata: Metadata,
    names: Sequence[str],
    timeout_s: float = RUNNING_TIMEOUT_S,
) -> None:
    """Wait until the workers have submitted every job and it is RUNNING upstream."""
    async with asyncio.timeout(timeout_s):
        while True:
            if all_running(await states(channel, metadata, names)):
                return
            await asyncio.sleep(0.5)


def all_running(job_states: Sequence[tuning_job_pb2.TuningJob.State.ValueType]) -> bool:
    return all(state == tuning_job_pb2.TuningJob.RUNNING for state in job_states)


async def assert_running(channel: grpc.aio.Channel, metadata: Metadata, names: list[str]) -> None:
    """Fail the measurement unless every job is RUNNING (so the window measured real work)."""
    job_states = await states(channel, metadata, names)
    if not all_running(job_states):
        shown = [tuning_job_pb2.TuningJob.State.Name(s) for s in job_states]
        raise AssertionError(f"not every job was RUNNING: {sorted(set(shown))}")


async def emulator_stats(emulator_url: str) -> dict[str, Any]:
    """The emulator's counters (`GET /_emulator/stats`)."""
    async with httpx.AsyncClient(base_url=emulator_url, timeout=10.0) as http:
        response = await http.get("/_emulator/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


async def status_requests(emulator_url: str) -> int:
    """Upstream status requests so far: `tunedModels.get` and `operations.get`."""
    requests = (await emulator_stats(emulator_url))["requests"]
    return sum(int(requests.get(route, 0)) for route in STATUS_ROUTES)


async def poller(
    get: Any,
    name: str,
    metadata: Metadata,
    *,
    pause_s: float,
    stop: asyncio.Event,
    count: PollCount,
) -> None:
    """Ask for one job's status every `pause_s` (starting at a random offset) until `stop`."""
    request = tuning_service_pb2.GetTuningJobRequest(name=name)
    await asyncio.sleep(random.uniform(0, pause_s))
    while not stop.is_set():
        try:
            await get(request, metadata=metadata, timeout=10.0)
            count.answered += 1
        except grpc.aio.AioRpcError:
            count.failed += 1
        await asyncio.sleep(pause_s)


async def poll_during(  # noqa: PLR0917 (the shape of the load)
    chans: list[grpc.aio.Channel],
    metadata: Metadata,
    names: list[str],
    pollers: int,
    pause_s: float,
    stop: asyncio.Event,
) -> PollCount:
    """`pollers` callers spread over the channels and jobs, polling until `stop` is set."""
    count = PollCount()
    calls = [get_job_call(channel) for channel in chans]
    spread = zip(range(pollers), itertools.cycle(calls), itertools.cycle(names), strict=False)
    await asyncio.gather(
        *(
            poller(get, name, metadata, pause_s=pause_s, stop=stop, count=count)
            for _, get, name in spread
        )
    )
    return count


@dataclass(frozen=True)
class Window:
    """What one measured window saw."""

    seconds: float
    upstream_status: int
    polls: PollCount


async def measure_window(  # noqa: PLR0917 (the shape of the load)
    stack: LocalSystem,
    chans: list[grpc.aio.Channel],
    names: list[str],
    pollers: int,
    pause_s: float,
    window_s: float,
) -> Window:
    """Run the pollers; count upstream status requests over `window_s` while they poll."""
    stop = asyncio.Event()
    load = asyncio.create_task(poll_during(chans, stack.metadata, names, pollers, pause_s, stop))
    await asyncio.sleep(pause_s)  # every poller has started
    before, started = await status_requests(stack.emulator_url), time.monotonic()
    await asyncio.sleep(window_s)
    after, ended = await status_requests(stack.emulator_url), time.monotonic()
    stop.set()
    return Window(ended - started, after - before, await load)


async def measure(
    *,
    jobs: int = 50,
    pollers: int = 1_000,
    window_s: float = 60.0,
    poll_interval_s: float = 5.0,
    poller_pause_s: float = 1.0,
    workers: int = 2,
    channel_count: int = 8,
) -> list[Figure]:
    """Upstream status requests per job per poll interval while `pollers` callers poll."""
    async with (
        bench_stack(
            workers=workers,
            emulator=EmulatorOptions(steps_per_second=SLOW_STEPS_PER_SECOND),
            poll_min_s=poll_interval_s,
            poll_max_s=poll_interval_s,
            poll_growth=1.0,
            upstream_rps=0.0,
        ) as stack,
        channels(stack.api_target, channel_count) as chans,
    ):
        names = await create_jobs(chans[0], stack.metadata, jobs)
        await wait_running(chans[0], stack.metadata, names)
        window = await measure_window(stack, chans, names, pollers, poller_pause_s, window_s)
        await assert_running(chans[0], stack.metadata, names)
    return [coalescing_figure(window, jobs, pollers, poll_interval_s)]


def coalescing_figure(window: Window, jobs: int, pollers: int, poll_interval_s: float) -> Figure:
    """Ours: upstream status requests per job per poll interval; baseline: the ideal, 1."""
    if window.upstream_status == 0 or window.polls.answered == 0:
        raise AssertionError(f"nothing measured: {window}")
    intervals = window.seconds / poll_interval_s
    return figure(
        f"coalescing ({pollers} pollers x {jobs} jobs)",
        "req/job/interval",
        window.upstream_status / (jobs * intervals),
        1.0,
        "ratio <= 1.0",
        lambda r: r <= 1.0,
        upstream_status_requests=window.upstream_status,
        get_tuning_job_answered=window.polls.answered,
        get_tuning_job_failed=window.polls.failed,
        window_s=window.seconds,
        poll_interval_s=poll_interval_s,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window (60)")
    parser.add_argument("--jobs", type=int, default=50, help="running jobs (50)")
    parser.add_argument("--pollers", type=int, default=1_000, help="concurrent pollers (1000)")
    parser.add_argument(
        "--poll-interval-s", type=float, default=5.0, help="worker's poll interval (5)"
    )
    args = parser.parse_args()
    figures = asyncio.run(
        measure(
            jobs=args.jobs,
            pollers=args.pollers,
            window_s=args.seconds,
            poll_interval_s=args.poll_interval_s,
        )
    )
    print(table(figures))
    for f in figures:
        print(f"{f.name}: {f.details}")


if __name__ == "__main__":
    main()
