"""The admission figure, run small: one real worker starts queued jobs of several tenants."""

from __future__ import annotations

import pytest

from bench import admission


@pytest.mark.timeout(180)
async def test_the_figure_counts_every_queued_job_reaching_the_upstream() -> None:
    unlimited, limited = await admission.measure(jobs=100, limited_jobs=50)
    assert unlimited.ours > 0 and unlimited.details["seconds"] > 0
    # (the seconds are rounded to a tenth)
    assert unlimited.ours == pytest.approx(100 / unlimited.details["seconds"], rel=0.1)
    assert limited.baseline == admission.LIMITED_RPS
    # Never faster than the budget allows (a burst of at most 10 aside).
    assert limited.ours <= (50 + 10) / limited.details["seconds"] + 1
