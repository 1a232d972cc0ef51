"""The Generate overhead figure, run small: a real job trained to SUCCEEDED, called both ways."""

from __future__ import annotations

import pytest

from bench import generate


@pytest.mark.timeout(180)
async def test_the_figure_times_both_paths_to_the_same_model() -> None:
    p50, p99 = await generate.measure(calls=20, rounds=1)

    assert (p50.baseline, p99.baseline) == (generate.P50_GOAL_MS, generate.P99_BOUND_MS)
    # The direct call took some time, and the platform's path is not free.
    assert p50.details["direct_p50_ms"] > 0
    assert p50.ours > 0
    assert p50.details["calls"] == 20
