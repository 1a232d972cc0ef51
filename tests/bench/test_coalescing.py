"""The coalescing figure, run small: real pollers, real workers, counted by the emulator."""

from __future__ import annotations

import pytest

from bench import coalescing

JOBS, POLLERS, WINDOW_S, INTERVAL_S = 5, 20, 3.0, 1.0


@pytest.mark.timeout(180)
async def test_the_figure_counts_upstream_status_requests_while_pollers_poll() -> None:
    [figure] = await coalescing.measure(
        jobs=JOBS,
        pollers=POLLERS,
        window_s=WINDOW_S,
        poll_interval_s=INTERVAL_S,
        poller_pause_s=0.2,
    )

    assert figure.baseline == 1.0
    # The workers polled the upstream: one request per job per interval, give or take a poll.
    assert 0.3 <= figure.ours <= 1.5
    upstream = figure.details["upstream_status_requests"]
    assert upstream == pytest.approx(figure.ours * JOBS * figure.details["window_s"] / INTERVAL_S)
    # The pollers asked far more often than the upstream was asked.
    assert figure.details["get_tuning_job_answered"] > 3 * upstream
    assert figure.details["get_tuning_job_failed"] == 0
    assert figure.details["window_s"] >= WINDOW_S


def test_a_window_that_saw_no_upstream_request_is_refused() -> None:
    empty = coalescing.Window(seconds=3.0, upstream_status=0, polls=coalescing.PollCount(10, 0))

    with pytest.raises(AssertionError, match="nothing measured"):
        coalescing.coalescing_figure(empty, jobs=5, pollers=20, poll_interval_s=1.0)
