"""Tracking: one worker process tracking 10,000 running jobs, its memory and upstream rate.

Setup (not measured): the jobs are created through the real API; the bench runs the
admission rounds itself (see `submit_all`) and a setup worker with no upstream budget
submits every job to the emulator, whose training is so slow that every job stays
RUNNING. The setup worker stops, every job is made due at once (`due_now`), and exactly
one worker process starts with the configured budget `B` requests/s (burst `b`) and
poll intervals short enough that the jobs want about twice `B`.

Measured, sampling once a second from the moment that worker is ready:

- memory: the worker's peak resident set (`VmHWM` of /proc/<pid>/status, the kernel's
  own high-water mark, so nothing between samples is missed), against 300 MB;
- request rate: upstream requests that spend the budget (every emulator route but
  `oauth.token`, which the bucket does not meter), counted by the emulator, mean per
  second over the window after a warm-up, against `B`;
- worker CPU per poll: the worker's user plus system CPU time (/proc/<pid>/stat) over
  that window, divided by the status polls the emulator counted in it (`tunedModels.get`
  and `operations.get`, bench.coalescing's `STATUS_ROUTES`), against 1.5 ms;
- Redis round trips per poll: the growth of the worker's own
  `tuning_redis_round_trips_total` (core.redis.client counts them; its /metrics is
  read at the window's two ends only, so that scraping costs the worker one scrape, not
  one a second) over the same window and polls, against 3.

Both per-poll figures charge the polls with everything the worker did in the window:
claiming due jobs, the token bucket, saving statuses, its gauges and sweeps.

"Never over the budget" is the token bucket's own promise, checked as the upstream sees
it: over EVERY span between two samples (not only 1-second neighbours, so no short
burst hides in a long window; the warm-up included), `requests <= B * span_s + b`. A
full bucket may spend `b` at once and then `B` per second; more than that in any span
means the fleet-wide bucket leaked. `max_excess` in the details is the largest
`requests - B * span_s` seen; it must stay at most `b`. It also bounds the mean: over a
window of `T` seconds the mean can exceed `B` by at most `b / T`, so the rate goal is
`ratio >= 0.9` plus this check.

The emulator reads its counters at some moment during the stats call, so a span is
taken at its widest, from the first call's start to the second call's end: requests
counted between the two reads arrived within it. A stats call slowed by a stalled
machine therefore cannot fake an excess, only blur the check (`stats_rtt_max_s`);
per-second rates use the calls' midpoints. `slow_stats_samples` counts stats calls
slower than 0.1 s: the machine (shared, two cores) stalled, and the worker with it,
which lowers the mean rate; the bucket rightly does not make up for lost time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.coalescing import STATUS_ROUTES
from bench.figure import Figure, crashed, figure, table
from bench.proc import cpu_seconds, memory_bytes
from bench.rpc import job_request
from bench.stack import bench_stack
from core.redis.admission import Admission
from core.redis.client import connect
from core.redis.keys import Keys
from core.redis.schedule import Schedule
from core.runtime.settings import Settings
from devstack.launcher import EmulatorOptions, LocalSystem
from tuning.v1 import tuning_service_pb2

JOBS = 10_000
BUDGET_RPS = 100.0
BURST = 10
WINDOW_S = 45.0
WARMUP_S = 5.0
RSS_GOAL_MB = 300.0
STEPS_PER_SECOND = 1e-4
"""Emulated training speed: not one step completes during a run, so jobs stay RUNNING."""
LONG_JOBS = 1_000
LONG_STEPS = 1_000
LONG_STEPS_PER_SECOND = 1.0
CREATE_CONCURRENCY = 32
SETUP_CONCURRENCY = 64
SETUP_TIMEOUT_S = 600.0
SETUP_POLL_S = 3600.0
UNMETERED_ROUTES = frozenset({"POST oauth.token"})
SLOW_STATS_S = 0.1
"""A stats call slower than this means the emulator (or the machine) stalled."""
CPU_PER_POLL = "tracking: worker CPU per poll"
CPU_PER_POLL_GOAL_MS = 1.5
ROUND_TRIPS_PER_POLL = "tracking: Redis round trips per poll"
ROUND_TRIPS_PER_POLL_GOAL = 3.0
ROUND_TRIPS_METRIC = "tuning_redis_round_trips_total"


@dataclass(frozen=True)
class Sample:
    """One look at the worker and the upstream."""

    sent_s: float
    """When the stats call was sent (monotonic seconds)."""
    got_s: float
    """When its answer came back; the emulator read its counters in between."""
    requests: int
    """Budgeted upstream requests the emulator has counted so far."""
    rss_kb: int
    hwm_kb: int
    polls: int
    """Status polls (`STATUS_ROUTES`) among `requests`."""
    cpu_s: float
    """The worker's CPU time so far, read after the stats."""
    round_trips: float | None = None
    """The worker's Redis round trips so far; None but where its /metrics was read."""

    @property
    def at_s(self) -> float:
        return (self.sent_s + self.got_s) / 2

    @property
    def rtt_s(self) -> float:
        return self.got_s - self.sent_s


@dataclass(frozen=True)
class Excess:
    """The largest `requests - rate * span_s` over every span between two samples."""

    requests: float
    span_s: float


def budgeted_requests(stats: dict[str, Any]) -> int:
    """Requests counted by the emulator that go through the worker's token bucket."""
    counts: dict[str, int] = stats["requests"]
    return sum(n for route, n in counts.items() if route not in UNMETERED_ROUTES)


def status_polls(stats: dict[str, Any]) -> int:
    """Status polls counted by the emulator: a job's poll is one of `STATUS_ROUTES`."""
    counts: dict[str, int] = stats["requests"]
    return sum(int(counts.get(route, 0)) for route in STATUS_ROUTES)


def first_measured(count: int, warmup_s: float) -> int:
    """Which of `count` samples, a second apart, opens the window after the warm-up."""
    return max(0, min(round(warmup_s), count - 2))


def max_excess(samples: list[Sample], rate_per_s: float) -> Excess:
    """Over all pairs i < j: the largest `(requests_j - requests_i) - rate * span`.

    `span` is the widest the two reads can be apart, `got_j - sent_i`. With
    `x_j = requests_j - rate * got_j` and `y_i = requests_i - rate * sent_i` the excess is
    `max_j (x_j - min_{i<j} y_i)`, found in one pass.
    """
    best, best_span = float("-inf"), 0.0
    low, low_at = samples[0].requests - rate_per_s * samples[0].sent_s, samples[0].sent_s
    for s in samples[1:]:
        x = s.requests - rate_per_s * s.got_s
        if x - low > best:
            best, best_span = x - low, s.got_s - low_at
        y = s.requests - rate_per_s * s.sent_s
        if y <= low:  # the latest low: the shortest span with that excess
            low, low_at = y, s.sent_s
    return Excess(best, best_span)


def per_second(samples: list[Sample]) -> list[float]:
    """Requests per second between neighbouring samples."""
    return [(b.requests - a.requests) / (b.at_s - a.at_s) for a, b in itertools.pairwise(samples)]


def rss_figure(samples: list[Sample]) -> Figure:
    """The worker's peak resident set over the run, against RSS_GOAL_MB."""
    return figure(
        "tracking RSS",
        "MB",
        max(s.hwm_kb for s in samples) / 1024,
        RSS_GOAL_MB,
        "ratio <= 1.0",
        lambda r: r <= 1.0,
        rss_start_mb=samples[0].rss_kb / 1024,
        rss_end_mb=samples[-1].rss_kb / 1024,
    )


def rate_figure(
    samples: list[Sample], budget_rps: float, burst: int, warmup_s: float, **extra: float
) -> Figure:
    """Mean budgeted requests/s after the warm-up, against the budget, never over it.

    The excess is checked over every sample, the warm-up included: a worker that starts
    with a full bucket may spend `burst` at once, and no more.
    """
    skipped = first_measured(len(samples), warmup_s)
    first, last = samples[skipped], samples[-1]
    excess = max_excess(samples, budget_rps)
    rates = per_second(samples)
    return figure(
        "tracking request rate",
        "req/s",
        (last.requests - first.requests) / (last.at_s - first.at_s),
        budget_rps,
        "r>=0.9, <=B*t+burst",
        lambda r: r >= 0.9 and excess.requests <= burst,
        burst=burst,
        window_s=last.at_s - first.at_s,
        max_1s_rps=max(rates),
        min_1s_rps=min(rates[skipped:]),
        max_excess=excess.requests,
        max_excess_span_s=excess.span_s,
        stats_rtt_max_s=max(s.rtt_s for s in samples),
        slow_stats_samples=sum(s.rtt_s > SLOW_STATS_S for s in samples),
        **extra,
    )


def cpu_per_poll_figure(first: Sample, last: Sample, name: str = CPU_PER_POLL) -> Figure:
    """The worker's CPU time per status poll between two samples, against 1.5 ms."""
    polls = last.polls - first.polls
    if polls <= 0:
        return crashed(name)
    cpu_s = last.cpu_s - first.cpu_s
    return figure(
        name,
        "ms",
        cpu_s * 1000 / polls,
        CPU_PER_POLL_GOAL_MS,
        f"<= {CPU_PER_POLL_GOAL_MS} ms",
        lambda r: r <= 1.0,
        polls=polls,
        cpu_s=cpu_s,
        window_s=last.at_s - first.at_s,
        requests_per_poll=(last.requests - first.requests) / polls,
    )


def round_trips_figure(first: Sample, last: Sample, name: str = ROUND_TRIPS_PER_POLL) -> Figure:
    """The worker's Redis round trips per status poll between two samples, against 3."""
    polls = last.polls - first.polls
    if polls <= 0 or first.round_trips is None or last.round_trips is None:
        return crashed(name)
    trips = last.round_trips - first.round_trips
    return figure(
        name,
        "round trips",
        trips / polls,
        ROUND_TRIPS_PER_POLL_GOAL,
        f"<= {ROUND_TRIPS_PER_POLL_GOAL:g}",
        lambda r: r <= 1.0,
        polls=polls,
        round_trips=trips,
    )


async def read_stats(http: httpx.AsyncClient) -> dict[str, Any]:
    """The emulator's counters (`GET /_emulator/stats`)."""
    response = await http.get("/_emulator/stats")
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


async def read_round_trips(http: httpx.AsyncClient, metrics_url: str) -> float | None:
    """The worker's `tuning_redis_round_trips_total`, or None if it cannot be read."""
    try:
        response = await http.get(metrics_url)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"cannot read {metrics_url}: {exc}", flush=True)
        return None
    for family in text_string_to_metric_families(response.text):
        for found in family.samples:
            if found.name == ROUND_TRIPS_METRIC:
                return float(found.value)
    return None


async def sample(http: httpx.AsyncClient, pid: int, metrics_url: str = "") -> Sample:
    """The emulator's counters and the worker's memory and CPU; its round trips too
    given its `metrics_url`."""
    sent_s = time.monotonic()
    stats = await read_stats(http)
    got_s = time.monotonic()
    memory = memory_bytes(pid)
    cpu_s = cpu_seconds(pid)
    round_trips = await read_round_trips(http, metrics_url) if metrics_url else None
    return Sample(
        sent_s,
        got_s,
        budgeted_requests(stats),
        memory["VmRSS"] // 1024,
        memory["VmHWM"] // 1024,
        status_polls(stats),
        cpu_s,
        round_trips,
    )


async def sample_every_second(
    http: httpx.AsyncClient,
    pid: int,
    seconds: float,
    *,
    metrics_url: str = "",
    scraped: Collection[int] = (),
) -> list[Sample]:
    """Samples on a fixed 1-second grid (no drift) for `seconds`; those numbered in
    `scraped` also read the worker's round trips from `metrics_url`."""
    started = time.monotonic()
    samples: list[Sample] = []
    for tick in range(int(seconds) + 1):
        await asyncio.sleep(max(0.0, started + tick - time.monotonic()))
        samples.append(await sample(http, pid, metrics_url if tick in scraped else ""))
    return samples


async def create_jobs(
    stack: LocalSystem,
    count: int,
    tenants: Sequence[str] = (),
    request: tuning_service_pb2.CreateTuningJobRequest | None = None,
) -> None:
    """`count` CreateTuningJob calls (`request`, else `job_request()`) through the API,
    `CREATE_CONCURRENCY` at a time, as the bench tenant or, given `tenants`, `count` as
    each of them."""
    request_bytes = (request or job_request()).SerializeToString()
    pending = [stack.metadata_of(t) for t in tenants for _ in range(count)] or [
        stack.metadata
    ] * count
    async with grpc.aio.insecure_channel(stack.api_target) as channel:
        create: Any = channel.unary_unary(
            "/tuning.v1.TuningService/CreateTuningJob",
            request_serializer=None,
            response_deserializer=None,
        )

        async def caller() -> None:
            while pending:
                await create(request_bytes, metadata=pending.pop())

        await asyncio.gather(*(caller() for _ in range(CREATE_CONCURRENCY)))


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, interval_s: float = 0.5
) -> None:
    """Ask `check` every `interval_s` until it answers True; TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout_s:.0f}s: {what}")
        await asyncio.sleep(interval_s)


async def submit_all(stack: LocalSystem, http: httpx.AsyncClient, jobs: int) -> None:
    """A setup worker without a budget submits every job; it stops after its last visit.

    The bench runs the admission rounds itself, back to back: a worker runs one round
    per turn of its loop, which starts one tenant's 10,000 queued jobs at the pace of
    that worker's visits, minutes for this setup. The setup worker polls no job (its
    first poll is an hour away), so that its whole effort goes into submitting;
    `due_now` then hands every job to the measured worker at once.
    """

    async def submitted() -> bool:
        return int((await read_stats(http))["creates"]) >= jobs

    setup = await stack.start_worker(
        name="setup",
        upstream_rps=0.0,
        worker_concurrency=SETUP_CONCURRENCY,
        poll_min_s=SETUP_POLL_S,
        poll_max_s=SETUP_POLL_S,
    )
    try:
        await admit_all(stack.settings)
        await wait_until(submitted, SETUP_TIMEOUT_S, f"{jobs} jobs submitted upstream")
    finally:
        await setup.child.stop()


async def admit_all(settings: Settings) -> int:
    """Admission rounds (core.redis.admission) until no job is queued; how many started."""
    keys = Keys(settings.redis_key_prefix)
    redis = connect(settings.redis_url, timeout_s=30.0)
    admission = Admission(redis, keys, Schedule(redis, keys), lambda _: settings.default_quotas())
    admitted = 0
    try:
        while started := await admission.round():
            admitted += started
    finally:
        await redis.aclose()
    return admitted


async def due_now(settings: Settings) -> int:
    """Make every scheduled job due now, as after a worker fleet's outage; how many.

    Both lanes of the schedule (core.redis.schedule): the submitted jobs wait in the
    poll lane."""
    keys = Keys(settings.redis_key_prefix)
    redis = connect(settings.redis_url, timeout_s=30.0)
    made_due = 0
    try:
        seconds, micros = await redis.time()
        for lane in (keys.schedule(), keys.poll_schedule()):
            members = cast(list[bytes], await redis.zrange(lane, 0, -1))
            due: dict[bytes, int] = dict.fromkeys(members, seconds * 1000 + micros // 1000)
            if due:
                await redis.zadd(lane, due, xx=True)
            made_due += len(due)
        return made_due
    finally:
        await redis.aclose()


async def profile(pid: int, out: str, after_s: float, seconds: float) -> None:
    """`py-spy record` of the process `pid` (raw: one `stack count` a line) into `out`,
    for `seconds` from `after_s` on; where the measured worker's CPU per poll goes.

    py-spy pauses the process at each sample: a profiled run's figures are a little off."""
    spy = shutil.which("py-spy")
    if spy is None:
        print("no py-spy on PATH: not profiled", flush=True)
        return
    await asyncio.sleep(after_s)
    args = ["record", "--gil", "-r", "200", "-d", str(int(seconds)), "-f", "raw", "-o", out]
    child = await asyncio.create_subprocess_exec(
        spy, *args, "--pid", str(pid), stdout=asyncio.subprocess.DEVNULL
    )
    await child.wait()


async def track(
    stack: LocalSystem,
    http: httpx.AsyncClient,
    seconds: float,
    warmup_s: float,
    profile_to: str = "",
) -> list[Sample]:
    """Start the one measured worker, sample it for `warmup_s + seconds`, stop it; and
    profile it over the window into `profile_to`, if given.

    It alone serves /metrics (the bench stack's other processes serve none), read where
    the window after the warm-up opens and closes.
    """
    name = "tracking"
    worker = await dataclasses.replace(stack, serve_metrics=True).start_worker(name=name)
    count = int(warmup_s + seconds) + 1
    async with contextlib.AsyncExitStack() as profiling:
        if profile_to:
            spying = asyncio.create_task(profile(worker.pid, profile_to, warmup_s, seconds - 1))
            profiling.push_async_callback(asyncio.wait, [spying])
        try:
            return await sample_every_second(
                http,
                worker.pid,
                warmup_s + seconds,
                metrics_url=stack.metrics_urls[name],
                scraped={first_measured(count, warmup_s), count - 1},
            )
        finally:
            await worker.child.stop()


def settings_for(jobs: int, budget_rps: float) -> dict[str, Any]:
    """Budget and polls: once each job settles at `poll_max_s`, they want twice the budget."""
    poll_max_s = min(Settings().poll_max_s, jobs / (2 * budget_rps))
    return {
        "upstream_rps": budget_rps,
        "upstream_burst": BURST,
        "poll_min_s": min(Settings().poll_min_s, poll_max_s),
        "poll_max_s": poll_max_s,
    }


async def measure(
    jobs: int = JOBS,
    budget_rps: float = BUDGET_RPS,
    seconds: float = WINDOW_S,
    warmup_s: float = WARMUP_S,
    *,
    report: Callable[[str], None] = lambda _: None,
    profile_to: str = "",
) -> list[Figure]:
    """Set up `jobs` RUNNING jobs, then measure one worker tracking them with `budget_rps`."""
    emulator = EmulatorOptions(steps_per_second=STEPS_PER_SECOND)
    run = tracking_run(
        jobs, budget_rps, seconds, warmup_s, emulator, report=report, profile_to=profile_to
    )
    async with run as (_, samples, tracked):
        pass
    first, last = samples[first_measured(len(samples), warmup_s)], samples[-1]
    return [
        rss_figure(samples),
        rate_figure(samples, budget_rps, BURST, warmup_s, jobs=tracked),
        cpu_per_poll_figure(first, last),
        round_trips_figure(first, last),
    ]


async def measure_long(
    jobs: int = LONG_JOBS,
    seconds: float = WINDOW_S,
    warmup_s: float = WARMUP_S,
    *,
    report: Callable[[str], None] = lambda _: None,
    profile_to: str = "",
) -> list[Figure]:
    """The per-poll figures again, for `LONG_JOBS` jobs each about `LONG_STEPS` steps in.

    A Gemini API job reports a snapshot per completed step and keeps them in its record
    (core.domain.snapshots), so a poll of a long job costs more than one of a new job.
    The emulator starts each job `LONG_STEPS` steps into its training (its
    `head_start_steps`) and adds `LONG_STEPS_PER_SECOND` more a second, so a poll (every
    `LONG_JOBS / (2 B)` seconds) sees a few new ones, as a real job's would; each job has
    20,000 steps (20 examples, batch size 1, 1,000 epochs), so none ends during the run.
    """
    emulator = EmulatorOptions(steps_per_second=LONG_STEPS_PER_SECOND, head_start_steps=LONG_STEPS)
    request = job_request()
    request.tuning_job.hyperparameters.epoch_count = 1000
    request.tuning_job.hyperparameters.batch_size = 1
    run = tracking_run(
        jobs, BUDGET_RPS, seconds, warmup_s, emulator, request, report=report, profile_to=profile_to
    )
    async with run as (stack, samples, _):
        steps = await steps_recorded(stack)
    first, last = samples[first_measured(len(samples), warmup_s)], samples[-1]
    name = f"long jobs ({LONG_STEPS:,} steps)"
    cpu = cpu_per_poll_figure(first, last, f"{name}: worker CPU per poll")
    trips = round_trips_figure(first, last, f"{name}: Redis round trips per poll")
    return [
        dataclasses.replace(f, details=f.details | {"snapshots_of_a_job": steps})
        for f in (cpu, trips)
    ]


@contextlib.asynccontextmanager
async def tracking_run(  # noqa: PLR0917 (the run's shape, then its options)
    jobs: int,
    budget_rps: float,
    seconds: float,
    warmup_s: float,
    emulator: EmulatorOptions,
    request: tuning_service_pb2.CreateTuningJobRequest | None = None,
    *,
    report: Callable[[str], None] = lambda _: None,
    profile_to: str = "",
) -> AsyncIterator[tuple[LocalSystem, list[Sample], int]]:
    """Set up `jobs` RUNNING jobs of `request`, track them with one worker at
    `budget_rps`; the stack, still up, the worker's samples, and how many jobs it had to
    track."""
    overrides = settings_for(jobs, budget_rps)
    async with (
        bench_stack(emulator=emulator, **overrides) as stack,
        httpx.AsyncClient(base_url=stack.emulator_url, timeout=30.0) as http,
    ):
        started = time.monotonic()
        await create_jobs(stack, jobs, request=request)
        report(f"created {jobs} jobs in {time.monotonic() - started:.1f}s")
        await submit_all(stack, http, jobs)
        report(f"submitted {jobs} jobs upstream in {time.monotonic() - started:.1f}s")
        tracked = await due_now(stack.settings)
        yield stack, await track(stack, http, seconds, warmup_s, profile_to), tracked


async def steps_recorded(stack: LocalSystem) -> int:
    """How many snapshots the first job listed has, as the API answers it."""
    async with grpc.aio.insecure_channel(stack.api_target) as channel:
        listed = await channel.unary_unary(
            "/tuning.v1.TuningService/ListTuningJobs",
            request_serializer=tuning_service_pb2.ListTuningJobsRequest.SerializeToString,
            response_deserializer=tuning_service_pb2.ListTuningJobsResponse.FromString,
        )(tuning_service_pb2.ListTuningJobsRequest(page_size=1), metadata=stack.metadata)
    return len(listed.tuning_jobs[0].snapshots) if listed.tuning_jobs else 0


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--budget", type=float, default=BUDGET_RPS, help="upstream requests/s")
    parser.add_argument("--seconds", type=float, default=WINDOW_S, help="measurement window")
    parser.add_argument(
        "--profile", default="", metavar="PATH", help="py-spy the measured worker into PATH"
    )
    parser.add_argument(
        "--long",
        action="store_true",
        help=f"the per-poll figures for {LONG_JOBS:,} jobs {LONG_STEPS:,} steps in instead",
    )
    args = parser.parse_args(None if argv is None else list(argv))
    if args.long:
        run = measure_long(report=print, profile_to=args.profile)
    else:
        run = measure(args.jobs, args.budget, args.seconds, report=print, profile_to=args.profile)
    found = asyncio.run(run)
    print(table(found))
    for f in found:
        print(f"{f.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in f.details.items()))


if __name__ == "__main__":
    main()
