"""When a RUNNING job should end: its remaining steps at the step rate seen lately.

The rate is measured over the job's last `RATE_WINDOW` moments of progress (a moment: a
time at which snapshots completed, with the highest step completed then):
`(last step - first step) / (last time - first time)`. A window, not the whole run,
follows a rate that changes (the upstream's capacity does); several moments, not the last
two, smooth out bursty progress; and counting moments, not snapshots, keeps a clump of
steps reported at once from looking like a burst of speed. The
estimate is `last time + remaining / rate`; once that moment is past (the job is slower
than it was, or stalled), it is `now + remaining / rate`, so a stalled job's estimate
moves later as it stalls instead of standing in the past.

Without two timed snapshots (Vertex AI reports counts, not steps with times), the rate is
the job's average since it started: `completed / (status fetch time - start time)`, which
counts the upstream's preparation too and so errs late. No progress, no estimate; a
QUEUED job has none either (its start depends on other tenants' jobs and the upstream's
quota, which nothing here can foresee honestly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from core.domain.job import Job
from core.domain.snapshots import Snapshot, Snapshots
from core.domain.states import JobState

RATE_WINDOW = 10
"""Moments of progress the step rate is measured over."""


def estimated_end(job: Job, now: float) -> float | None:
    """The job's estimated end (seconds since the epoch), or None (see the module doc)."""
    plan = end_plan(job)
    return None if plan is None else plan.at(now)


class EndPlan(NamedTuple):
    """What the estimate is for a given record, whatever the time: `end_s` while it is
    ahead, `remaining_s` from now once it is past."""

    end_s: float
    remaining_s: float

    def at(self, now: float) -> float:
        """The estimated end as of `now`."""
        return self.end_s if self.end_s >= now else now + self.remaining_s


def end_plan(job: Job) -> EndPlan | None:
    """The job's estimate as its record says it, or None (see the module doc). The record
    alone decides it, so a reader that keeps the record keeps this too."""
    total, done = job.progress.total_steps, job.progress.completed_steps
    if job.state is not JobState.RUNNING or total <= 0:
        return None
    rate_at = _window_rate(_moments(job.snapshots)[-RATE_WINDOW:]) or _average_rate(job, done)
    if rate_at is None:
        return None
    rate, at, last_step = rate_at
    remaining_s = max(total - max(done, last_step), 0) / rate
    return EndPlan(at + remaining_s, remaining_s)


def _moments(snapshots: Sequence[Snapshot]) -> list[tuple[float, int]]:
    """(time, highest step completed by then) for each time snapshots completed at."""
    if not snapshots:
        return []
    columns = Snapshots.of(snapshots)
    steps: dict[float, int] = {}
    for at, step in zip(columns.compute_times, columns.steps, strict=True):
        if at is not None:
            steps[at] = max(step, steps.get(at, 0))
    return sorted(steps.items())


def _window_rate(window: Sequence[tuple[float, int]]) -> tuple[float, float, int] | None:
    if len(window) < 2:
        return None
    (first_at, first_step), (last_at, last_step) = window[0], window[-1]
    elapsed_s, steps = last_at - first_at, last_step - first_step
    if elapsed_s <= 0 or steps <= 0:
        return None
    return steps / elapsed_s, last_at, last_step


def _average_rate(job: Job, done: int) -> tuple[float, float, int] | None:
    if job.start_time is None or job.status_fetch_time is None or done <= 0:
        return None
    elapsed_s = job.status_fetch_time - job.start_time
    return (done / elapsed_s, job.status_fetch_time, done) if elapsed_s > 0 else None
