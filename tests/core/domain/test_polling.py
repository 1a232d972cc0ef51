"""What poll interval a running job asks for: by its age, and by how fast it moves."""

from __future__ import annotations

import pytest

from core.domain.job import Job, Progress
from core.domain.polling import PollPolicy, time_left_s

POLICY = PollPolicy(min_s=5.0, max_s=60.0, growth=1.5)


def observed(percent: float, at_s: float, polls: int) -> Job:
    return Job(
        id="j1",
        tenant="team-a",
        base_model="m",
        progress=Progress(completed_percent=percent),
        status_fetch_time=at_s,
        polls=polls,
    )


def test_a_job_that_does_not_move_asks_less_often_as_it_ages() -> None:
    intervals = [POLICY.next_s(observed(10, 0, n - 1), observed(10, 100, n)) for n in range(1, 12)]
    assert intervals[0] == POLICY.first_s() == 5.0
    assert intervals[1] == 7.5
    assert intervals == sorted(intervals)
    assert intervals[-1] == 60.0  # capped


def test_a_job_about_to_finish_is_looked_at_when_its_pace_says_it_will() -> None:
    # 10 points in 100 s, 95 done: about 50 s left, sooner than its age asks (60 s).
    before, after = observed(85, 1000, 20), observed(95, 1100, 21)
    assert time_left_s(before, after) == pytest.approx(50.0)
    assert POLICY.next_s(before, after) == pytest.approx(50.0)
    # Nearly done: never sooner than the shortest interval.
    assert POLICY.next_s(observed(98, 1000, 20), observed(99.99, 1100, 21)) == 5.0


def test_steps_count_when_the_upstream_reports_them() -> None:
    before = observed(0, 0, 3).replace(progress=Progress(completed_steps=10, total_steps=100))
    after = observed(0, 10, 4).replace(progress=Progress(completed_steps=20, total_steps=100))
    assert time_left_s(before, after) == pytest.approx(80.0)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (observed(50, 100, 3), observed(50, 200, 4)),  # not moving
        (observed(50, 200, 3), observed(60, 200, 4)),  # no time between the polls
        (observed(50, 100, 0).replace(status_fetch_time=None), observed(60, 200, 1)),
    ],
)
def test_no_pace_without_two_polls_that_show_movement(before: Job, after: Job) -> None:
    assert time_left_s(before, after) is None
