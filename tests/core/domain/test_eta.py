"""The ETA on steady, bursty and stalled progress, and where there is none."""

from __future__ import annotations

import pytest

from core.domain.eta import estimated_end
from core.domain.job import Job, Progress
from core.domain.snapshots import Snapshot
from core.domain.states import JobState


def running(steps: list[tuple[int, float]], total: int = 100, **more: object) -> Job:
    snaps = tuple(Snapshot(step, 0, 1.0, at) for step, at in steps)
    done = steps[-1][0] if steps else 0
    return Job(
        id="j",
        tenant="t",
        base_model="m",
        state=JobState.RUNNING,
        snapshots=snaps,
        progress=Progress(completed_steps=done, total_steps=total),
        **more,  # type: ignore[arg-type]
    )


def test_steady_progress_ends_at_its_rate() -> None:
    job = running([(step, 1000.0 + 2 * step) for step in range(1, 21)])  # a step every 2 s
    assert estimated_end(job, now=1041.0) == pytest.approx(1040.0 + 80 * 2)


def test_bursty_progress_is_averaged_over_the_window() -> None:
    # five steps reported at once every 10 s: 0.5 steps/s, however the clumps fall
    steps = [(5 * burst + k, 1000.0 + 10 * burst) for burst in range(1, 5) for k in range(1, 6)]
    assert estimated_end(running(steps), now=1040.0) == pytest.approx(1040.0 + 75 / 0.5)


def test_a_stalled_job_is_estimated_from_now_so_its_end_moves_later() -> None:
    job = running([(step, 1000.0 + step) for step in range(1, 11)])  # 1 step/s, then nothing
    on_time = estimated_end(job, now=1010.0)
    assert on_time == pytest.approx(1100.0)
    later = estimated_end(job, now=1500.0)
    assert later == pytest.approx(1500.0 + 90)


def test_without_timed_snapshots_the_average_since_start_serves() -> None:
    job = running([], start_time=1000.0, status_fetch_time=1100.0).replace(
        progress=Progress(completed_steps=25, total_steps=100)
    )
    assert estimated_end(job, now=1100.0) == pytest.approx(1100.0 + 75 * 4)


def test_no_progress_or_not_running_has_no_estimate() -> None:
    assert estimated_end(running([]), now=0.0) is None
    steady = running([(1, 1.0), (2, 2.0)])
    assert estimated_end(steady.replace(state=JobState.QUEUED), now=0.0) is None
    assert estimated_end(steady.replace(progress=Progress()), now=0.0) is None
