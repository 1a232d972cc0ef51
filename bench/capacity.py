"""`python -m bench.capacity`: a company's numbers in, replicas, workers and Redis out.

The model (docs/capacity.md) multiplies each unit of work by its measured cost: API CPU
per GetTuningJob and per CreateTuningJob (`bench.rpc`), API CPU per idle watcher
(`bench.watch`), worker CPU per status poll (`bench.tracking`), Redis memory per job
(`bench.redis_memory`). The costs are read from a benchmark run's results
(`bench/results/latest.json`, written by `python -m bench`) where it has them, and
otherwise are the figures measured when docs/capacity.md was written (MEASURED), so the
answer always says which it used.

Polls: a RUNNING job is polled about every TUNING_POLL_MAX_S (60 s) once it is old, but
never more often in all than the fleet's upstream budget allows: polls per second are
min(jobs in flight / poll interval, upstream rps). Each replica or worker is planned to
run at TARGET_UTILIZATION of its cores, and never fewer than MIN_REPLICAS (two, so one
can be lost).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from bench.figure import RESULTS
from bench.tracking import CPU_PER_POLL

TARGET_UTILIZATION = 0.6
MIN_REPLICAS = 2
REDIS_HEADROOM = 2.0
"""Redis is sized at twice its data: fork for persistence, fragmentation, growth."""


@dataclass(frozen=True)
class UnitCosts:
    """What one unit of work costs, as measured."""

    api_cpu_per_read_s: float
    api_cpu_per_create_s: float
    api_cpu_per_idle_watcher_s: float
    """Core-seconds per second (cores) one open, idle WatchTuningJob stream costs."""
    worker_cpu_per_poll_s: float
    redis_bytes_per_queued_job: float
    redis_bytes_per_running_job: float


MEASURED = UnitCosts(
    # 2026-12-02 on this project's 2-core machines (docs/capacity.md has the runs).
    api_cpu_per_read_s=340e-6,
    api_cpu_per_create_s=1_100e-6,
    api_cpu_per_idle_watcher_s=0.151 / 5_000,
    worker_cpu_per_poll_s=1.82e-3,
    redis_bytes_per_queued_job=6_600,
    redis_bytes_per_running_job=11_500,
)
"""The defaults: the figures docs/capacity.md reports."""

FROM_RESULTS = {
    # figure name -> (detail key or "" for the figure's own value, unit field, scale)
    "status read throughput": ("server_cpu_us", "api_cpu_per_read_s", 1e-6),
    "create throughput": ("server_cpu_us", "api_cpu_per_create_s", 1e-6),
    CPU_PER_POLL: ("", "worker_cpu_per_poll_s", 1e-3),
    "redis: memory per queued job": ("", "redis_bytes_per_queued_job", 1.0),
    "redis: memory per running job": ("", "redis_bytes_per_running_job", 1.0),
}


@dataclass(frozen=True)
class Company:
    """What the company runs."""

    jobs_in_flight: int
    """Jobs RUNNING upstream at once (each polled)."""
    jobs_kept: int
    """Job records kept in all (finished ones until retention removes them)."""
    reads_per_s: float
    creates_per_s: float
    watchers: int
    upstream_rps: float
    poll_interval_s: float = 60.0
    cores_per_replica: float = 1.0
    cores_per_worker: float = 1.0


@dataclass(frozen=True)
class Plan:
    api_replicas: int
    workers: int
    polls_per_s: float
    redis_bytes: int
    api_cores: float
    worker_cores: float


def costs_from(results: Mapping[str, object] | None) -> tuple[UnitCosts, list[str]]:
    """The unit costs, each from `results` (a `write_json` payload) where it has the
    figure, else MEASURED; and the names of the costs taken from the results."""
    costs, taken = MEASURED, []
    figures = results.get("figures", []) if results else []
    assert isinstance(figures, list)
    for found in figures:
        source = FROM_RESULTS.get(found.get("name", ""))
        if source is None:
            continue
        key, field, scale = source
        value = found["details"].get(key) if key else found.get("ours")
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            costs = replace(costs, **{field: value * scale})
            taken.append(field)
    return costs, taken


def plan(company: Company, costs: UnitCosts) -> Plan:
    polls_per_s = min(company.jobs_in_flight / company.poll_interval_s, company.upstream_rps)
    api_cores = (
        company.reads_per_s * costs.api_cpu_per_read_s
        + company.creates_per_s * costs.api_cpu_per_create_s
        + company.watchers * costs.api_cpu_per_idle_watcher_s
    )
    worker_cores = polls_per_s * costs.worker_cpu_per_poll_s
    finished = max(company.jobs_kept - company.jobs_in_flight, 0)
    data_bytes = (
        company.jobs_in_flight * costs.redis_bytes_per_running_job
        + finished * costs.redis_bytes_per_queued_job
    )
    return Plan(
        api_replicas=_replicas(api_cores, company.cores_per_replica),
        workers=_replicas(worker_cores, company.cores_per_worker),
        polls_per_s=polls_per_s,
        redis_bytes=int(data_bytes * REDIS_HEADROOM),
        api_cores=api_cores,
        worker_cores=worker_cores,
    )


def _replicas(cores: float, per_replica: float) -> int:
    return max(MIN_REPLICAS, math.ceil(cores / (per_replica * TARGET_UTILIZATION)))


def report(company: Company, costs: UnitCosts, taken: list[str], result: Plan) -> str:
    lines = ["unit costs:"]
    for f in fields(costs):
        source = "this machine's benchmark run" if f.name in taken else "docs/capacity.md"
        lines.append(f"  {f.name} = {getattr(costs, f.name):.4g}  ({source})")
    lines += [
        f"polls per second: {result.polls_per_s:.1f} "
        f"(of {company.jobs_in_flight} jobs every {company.poll_interval_s:g} s, "
        f"within {company.upstream_rps:g} upstream rps)",
        f"API: {result.api_cores:.2f} cores -> {result.api_replicas} replicas "
        f"of {company.cores_per_replica:g} core at {TARGET_UTILIZATION:.0%}",
        f"workers: {result.worker_cores:.2f} cores -> {result.workers} workers "
        f"of {company.cores_per_worker:g} core at {TARGET_UTILIZATION:.0%}",
        f"Redis: {result.redis_bytes / 2**20:.0f} MiB "
        f"({REDIS_HEADROOM:g}x the data of {company.jobs_kept} jobs)",
    ]
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs-in-flight", type=int, required=True)
    parser.add_argument("--jobs-kept", type=int, required=True)
    parser.add_argument("--reads-per-s", type=float, default=0.0)
    parser.add_argument("--creates-per-s", type=float, default=0.0)
    parser.add_argument("--watchers", type=int, default=0)
    parser.add_argument("--upstream-rps", type=float, required=True)
    parser.add_argument("--poll-interval-s", type=float, default=60.0)
    parser.add_argument("--results", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(None if argv is None else list(argv))
    company = Company(
        jobs_in_flight=args.jobs_in_flight,
        jobs_kept=args.jobs_kept,
        reads_per_s=args.reads_per_s,
        creates_per_s=args.creates_per_s,
        watchers=args.watchers,
        upstream_rps=args.upstream_rps,
        poll_interval_s=args.poll_interval_s,
    )
    results = json.loads(args.results.read_text()) if args.results.exists() else None
    costs, taken = costs_from(results)
    print(report(company, costs, taken, plan(company, costs)))


if __name__ == "__main__":
    main()
