"""Fleet under quota: four workers against an upstream that allows N requests per second.

The emulator enforces a quota of N requests in any sliding second and answers 429
RESOURCE_EXHAUSTED above it (`--rate-limit-rps`, see emulator/README.md). The workers are
configured as an operator would from the known quota (`operator_settings`): the fleet-wide
budget `TUNING_UPSTREAM_RPS` is N - 1 and `TUNING_UPSTREAM_BURST` is 1. There is more work
than the quota allows (more running jobs than N, each wanting a status poll every second), so
the fleet should use nearly all of N without going over it.

Two figures, both from the emulator's counters over the measured window:

- upstream use: requests the upstream admitted per second, against N (goal: at least 90%);
- 429 share: the requests it refused with 429, in percent of all it received (goal: under 1%).

Then, in the same saturated stack, how long a create and a cancel take to reach the
upstream (bench/priority.py).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench import priority
from bench.coalescing import (
    SLOW_STEPS_PER_SECOND,
    assert_running,
    channels,
    create_jobs,
    emulator_stats,
    wait_running,
)
from bench.figure import Figure, figure, table
from bench.stack import bench_stack
from devstack.launcher import EmulatorOptions

WORKERS = 4
SETTLE_S = 3.0


@dataclass(frozen=True)
class FleetBudget:
    """The workers' `TUNING_UPSTREAM_RPS` and `TUNING_UPSTREAM_BURST`."""

    upstream_rps: float
    upstream_burst: int


def operator_settings(quota_rps: int) -> FleetBudget:
    """The fleet's budget for an upstream quota of `quota_rps` per sliding second.

    A token bucket lets through at most `burst + rate * T` requests in any T seconds. The
    quota grants no burst, so the burst is 1, and the rate is one less than the quota: then
    no second holds more than N grants even when the senders are up to `1 / (N - 1)` s late
    for their tokens (core.redis.token_bucket drops tokens woken up for later than that, 50 ms). At
    the default `TUNING_UPSTREAM_BURST` of 10 with the rate at N, the bucket would allow
    N + 10 in a second, and any jitter in the requests' arrival puts a second over N.
    """
    if quota_rps < 2:
        raise ValueError("a quota of at least 2 requests per second is needed")
    return FleetBudget(upstream_rps=float(quota_rps - 1), upstream_burst=1)


@dataclass(frozen=True)
class QuotaWindow:
    """What the upstream's quota decided during one measured window."""

    seconds: float
    admitted: int
    refused: int

    @property
    def admitted_per_s(self) -> float:
        return self.admitted / self.seconds

    @property
    def refused_share(self) -> float:
        """Refused (429) requests as a fraction of every request that arrived."""
        total = self.admitted + self.refused
        return self.refused / total if total else 0.0


async def quota_counts(emulator_url: str) -> tuple[int, int]:
    """Admitted and refused API requests so far (`rate_limit` of `/_emulator/stats`)."""
    counts: dict[str, Any] = (await emulator_stats(emulator_url))["rate_limit"]
    return int(counts["admitted"]), int(counts["refused"])


async def measure_quota(emulator_url: str, window_s: float) -> QuotaWindow:
    """The quota's counts over `window_s` seconds."""
    (admitted, refused), started = await quota_counts(emulator_url), time.monotonic()
    await asyncio.sleep(window_s)
    (admitted_after, refused_after), ended = await quota_counts(emulator_url), time.monotonic()
    return QuotaWindow(ended - started, admitted_after - admitted, refused_after - refused)


async def measure(
    *,
    quota_rps: int = 20,
    jobs: int = 60,
    window_s: float = 30.0,
    poll_interval_s: float = 1.0,
    workers: int = WORKERS,
    settle_s: float = SETTLE_S,
    budget: FleetBudget | None = None,
) -> list[Figure]:
    """Upstream requests admitted per second and the 429 share, `workers` under `quota_rps`.

    `budget` replaces `operator_settings(quota_rps)` (to try others).
    """
    budget = budget or operator_settings(quota_rps)
    demand_rps = jobs / poll_interval_s
    if demand_rps <= quota_rps:
        raise ValueError(f"{jobs} jobs polled every {poll_interval_s}s do not exceed the quota")
    emulator = EmulatorOptions(steps_per_second=SLOW_STEPS_PER_SECOND, rate_limit_rps=quota_rps)
    async with (
        bench_stack(
            workers=workers,
            emulator=emulator,
            poll_min_s=poll_interval_s,
            poll_max_s=poll_interval_s,
            poll_growth=1.0,
            upstream_rps=budget.upstream_rps,
            upstream_burst=budget.upstream_burst,
        ) as stack,
        channels(stack.api_target, 1) as (channel,),
    ):
        names = await create_jobs(channel, stack.metadata, jobs)
        await wait_running(channel, stack.metadata, names)
        await asyncio.sleep(settle_s)  # past the start: every job is being polled
        window = await measure_quota(stack.emulator_url, window_s)
        await assert_running(channel, stack.metadata, names)
        creates_s = await priority.create_latencies_s(channel, stack.metadata)
        cancels_s = await priority.cancel_latencies_s(channel, stack.metadata, names)
    figures = fleet_figures(window, quota_rps, budget, jobs=jobs, workers=workers)
    return figures + priority.priority_figures(creates_s, cancels_s)


def fleet_figures(
    window: QuotaWindow, quota_rps: int, budget: FleetBudget, *, jobs: int, workers: int
) -> list[Figure]:
    """Upstream use against the quota, and the 429 share against 1%."""
    if window.admitted == 0:
        raise AssertionError(f"nothing reached the upstream: {window}")
    details = {
        "admitted": float(window.admitted),
        "refused_429": float(window.refused),
        "window_s": window.seconds,
        "jobs": float(jobs),
        "budget_rps": budget.upstream_rps,
        "burst": float(budget.upstream_burst),
    }
    return [
        figure(
            f"fleet upstream use ({workers} workers)",
            "req/s",
            window.admitted_per_s,
            float(quota_rps),
            "ratio >= 0.9",
            lambda r: r >= 0.9,
            **details,
        ),
        figure(
            f"fleet 429 share ({workers} workers)",
            "%",
            100 * window.refused_share,
            1.0,
            "ratio < 1.0",
            lambda r: r < 1.0,
            **details,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window (30)")
    parser.add_argument("--quota-rps", type=int, default=20, help="the upstream's quota N (20)")
    parser.add_argument("--jobs", type=int, default=60, help="running jobs (60)")
    parser.add_argument(
        "--budget-rps", type=float, help="TUNING_UPSTREAM_RPS instead of the quota - 1"
    )
    parser.add_argument("--burst", type=int, default=1, help="TUNING_UPSTREAM_BURST (1)")
    args = parser.parse_args()
    budget = None
    if args.budget_rps is not None:
        budget = FleetBudget(args.budget_rps, args.burst)
    figures = asyncio.run(
        measure(
            quota_rps=args.quota_rps,
            jobs=args.jobs,
            window_s=args.seconds,
            budget=budget,
        )
    )
    print(table(figures))
    print(f"details: {figures[0].details}")


if __name__ == "__main__":
    main()
