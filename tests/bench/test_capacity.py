"""The capacity model: its arithmetic, and its unit costs read from a real benchmark run
(the Redis memory figure, run small against a real redis-server)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench import capacity, redis_memory
from bench.figure import write_json

COMPANY = capacity.Company(
    jobs_in_flight=6_000,
    jobs_kept=60_000,
    reads_per_s=2_000,
    creates_per_s=5,
    watchers=1_000,
    upstream_rps=50,
)
COSTS = capacity.UnitCosts(
    api_cpu_per_read_s=300e-6,
    api_cpu_per_create_s=1e-3,
    api_cpu_per_idle_watcher_s=30e-6,
    worker_cpu_per_poll_s=2e-3,
    redis_bytes_per_queued_job=6_000,
    redis_bytes_per_running_job=12_000,
)


def test_the_plan_multiplies_each_unit_by_its_cost() -> None:
    found = capacity.plan(COMPANY, COSTS)
    # 6,000 jobs every 60 s would be 100 polls/s; the upstream budget allows 50.
    assert found.polls_per_s == 50
    # 2,000 x 0.3 ms + 5 x 1 ms + 1,000 x 0.03 ms = 0.635 cores; at 60% of one core each.
    assert found.api_cores == pytest.approx(0.635)
    assert found.api_replicas == 2  # ceil(0.635 / 0.6) = 2, and never fewer than two
    assert found.worker_cores == pytest.approx(0.1)
    assert found.workers == 2
    # 6,000 running x 12 kB + 54,000 finished x 6 kB, twice over.
    assert found.redis_bytes == 2 * (6_000 * 12_000 + 54_000 * 6_000)


def test_a_busier_company_gets_more_replicas() -> None:
    busy = dataclasses.replace(COMPANY, reads_per_s=20_000)
    assert capacity.plan(busy, COSTS).api_replicas == 11  # ceil(6.035 / 0.6)


@pytest.mark.timeout(120)
async def test_unit_costs_come_from_a_benchmark_run(tmp_path: Path) -> None:
    figures = await redis_memory.measure(jobs=100, polls=2)
    results = tmp_path / "latest.json"
    write_json(figures, results)
    costs, taken = capacity.costs_from(json.loads(results.read_text()))
    assert set(taken) == {"redis_bytes_per_queued_job", "redis_bytes_per_running_job"}
    assert costs.redis_bytes_per_queued_job == figures[0].ours
    assert costs.redis_bytes_per_running_job > costs.redis_bytes_per_queued_job
    # What the run did not measure keeps the documented figures.
    assert costs.worker_cpu_per_poll_s == capacity.MEASURED.worker_cpu_per_poll_s


def test_every_figure_it_reads_is_one_a_benchmark_makes() -> None:
    bench = Path(capacity.__file__).parent
    sources = "".join(p.read_text() for p in bench.glob("*.py") if p.name != "capacity.py")
    for name in capacity.FROM_RESULTS:
        assert f'"{name}"' in sources, name


def test_the_command_prints_the_plan_and_its_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capacity.main(
        ["--jobs-in-flight", "600", "--jobs-kept", "6000", "--reads-per-s", "100",
         "--upstream-rps", "20", "--results", str(tmp_path / "none.json")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "(docs/capacity.md)" in out and "this machine's" not in out
    assert "polls per second: 10.0" in out
    assert "API: " in out and "workers: " in out and "Redis: " in out
