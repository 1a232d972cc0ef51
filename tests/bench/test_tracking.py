"""The tracking benchmark at a tiny scale: its figures come from a real worker and emulator."""

from __future__ import annotations

import pytest

from bench.tracking import Sample, max_excess, measure, measure_long, per_second


def samples(*points: tuple[float, int], rtt_s: float = 0.0) -> list[Sample]:
    """Samples read at these times with these counts, each stats call taking `rtt_s`."""
    return [Sample(at_s - rtt_s / 2, at_s + rtt_s / 2, n, 0, 0, 0, 0.0) for at_s, n in points]


def test_excess_is_found_in_any_span_not_only_between_neighbours() -> None:
    # 10/s for 3 s, then 25 in the next second and 25 in the one after: each second alone
    # is 15 over, the two together 30 over a budget of 10/s.
    found = max_excess(samples((0, 0), (1, 10), (2, 20), (3, 30), (4, 55), (5, 80)), 10.0)
    assert found.requests == pytest.approx(30.0)
    assert found.span_s == pytest.approx(2.0)


def test_a_slow_stats_call_widens_the_span_instead_of_faking_an_excess() -> None:
    # 15 requests between reads 1 s apart by their midpoints, but each read took 0.5 s:
    # they may have been 1.5 s apart, enough for 15 at 10/s.
    found = max_excess(samples((0, 0), (1, 15), rtt_s=0.5), 10.0)
    assert found.requests == pytest.approx(0.0)
    assert found.span_s == pytest.approx(1.5)


def test_a_steady_rate_at_the_budget_has_no_excess() -> None:
    found = max_excess(samples((0, 0), (1, 10), (2, 20), (3, 30)), 10.0)
    assert found.requests == pytest.approx(0.0)
    assert per_second(samples((0, 0), (1, 10), (2.5, 25))) == [10.0, 10.0]


@pytest.mark.timeout(180)
async def test_tracking_figures_come_from_the_running_worker() -> None:
    rss, rate, cpu, trips = await measure(jobs=50, budget_rps=20.0, seconds=3.0, warmup_s=1.0)
    assert rss.name == "tracking RSS" and rss.unit == "MB" and rss.baseline == 300.0
    # A Python worker's resident set is tens of MB; its peak is at least where it started.
    assert 10.0 < rss.ours >= rss.details["rss_start_mb"]
    assert rate.name == "tracking request rate" and rate.baseline == 20.0
    assert rate.details["jobs"] == 50, "every job was submitted and is tracked"
    assert rate.ours > 0, "the worker polled its jobs upstream during the window"
    assert rate.details["window_s"] == pytest.approx(3.0, abs=0.5)
    assert rate.details["max_1s_rps"] >= rate.details["min_1s_rps"]
    assert rate.details["burst"] == 10
    # The per-poll figures share the window; the worker polled, spent CPU and used Redis.
    assert cpu.name == "tracking: worker CPU per poll" and cpu.unit == "ms"
    assert cpu.baseline == 1.5 and cpu.details["polls"] > 0 and cpu.ours > 0
    assert cpu.details["window_s"] == pytest.approx(3.0, abs=0.5)
    assert trips.name == "tracking: Redis round trips per poll" and trips.baseline == 3.0
    assert trips.details["polls"] == cpu.details["polls"]
    assert trips.ours >= 1.0, "a poll's status is saved in Redis: at least one round trip"


@pytest.mark.timeout(180)
async def test_long_jobs_figures_poll_jobs_far_into_their_training() -> None:
    cpu, trips = await measure_long(jobs=20, seconds=3.0, warmup_s=1.0)
    assert cpu.name == "long jobs (1,000 steps): worker CPU per poll" and cpu.baseline == 1.5
    assert cpu.details["polls"] > 0 and cpu.ours > 0
    assert trips.name == "long jobs (1,000 steps): Redis round trips per poll"
    # The worker recorded each step the emulator reported: the head start and more.
    assert cpu.details["snapshots_of_a_job"] >= 1_000
