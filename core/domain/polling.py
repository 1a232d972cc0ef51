"""When to poll a running job again: the interval each job asks for.

A job asks for a poll interval by its age and by how fast it is moving:

- Age: the first poll comes `min_s` after submission, and each poll after it asks for
  `growth` times longer, up to `max_s`. Most of what a caller wants to see early (the job
  started, it failed at once) happens early; a job hours into its training changes slowly.
- Movement: when the two latest polls show progress (completed percent, or steps out of
  the total), the job's pace gives the time it still needs; the next poll comes no later
  than that (and no sooner than `min_s`), so that a job is seen to finish about when it
  does, not up to `max_s` after.

What a job asks for is a wish, not a promise: the schedule hands polls out only as the
fleet's upstream budget allows (core.redis.schedule). With N jobs to watch and a budget of
B requests a second, every job is polled about every N / B seconds when that is longer
than what it asked. `status_fetch_time` on the job says when its status was fetched, so a
caller always sees how fresh it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain.job import Job, Progress


@dataclass(frozen=True)
class PollPolicy:
    """Poll intervals between `min_s` and `max_s`, growing by `growth` with each poll."""

    min_s: float
    max_s: float
    growth: float

    def first_s(self) -> float:
        """The first poll after submission."""
        return self.min_s

    def next_s(self, before: Job, after: Job) -> float:
        """The interval `after` (the job as its latest poll left it) asks for, given
        `before` (as the poll found it)."""
        by_age = min(self.max_s, self.min_s * self.growth ** max(after.polls - 1, 0))
        left_s = time_left_s(before, after)
        if left_s is None:
            return by_age
        return max(self.min_s, min(by_age, left_s))


def time_left_s(before: Job, after: Job) -> float | None:
    """Seconds the job still needs at the pace of its two latest polls; None if they do
    not show it moving."""
    start, end = before.status_fetch_time, after.status_fetch_time
    if start is None or end is None or end <= start:
        return None
    done_before, done_after = _fraction(before.progress), _fraction(after.progress)
    if done_after <= done_before:
        return None
    per_s = (done_after - done_before) / (end - start)
    return (1.0 - done_after) / per_s


def _fraction(progress: Progress) -> float:
    """How much of the job is done, 0 to 1."""
    if progress.total_steps > 0:
        return min(1.0, progress.completed_steps / progress.total_steps)
    return min(1.0, progress.completed_percent / 100)
