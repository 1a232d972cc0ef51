"""The fleet-under-quota figure and the priority figures, run small."""

from __future__ import annotations

import pytest

from bench import fleet, priority

QUOTA_RPS, JOBS, WINDOW_S = 5, 8, 3.0


@pytest.mark.timeout(180)
async def test_the_figure_counts_what_the_quota_admitted_and_refused() -> None:
    use, share, creates, cancels = await fleet.measure(
        quota_rps=QUOTA_RPS, jobs=JOBS, window_s=WINDOW_S
    )

    assert use.baseline == QUOTA_RPS
    admitted, refused = use.details["admitted"], use.details["refused_429"]
    assert admitted > 0
    assert use.ours == pytest.approx(admitted / use.details["window_s"])
    # The emulator never admits more than the quota in any second.
    assert use.ours <= QUOTA_RPS * (1 + 1 / WINDOW_S)
    assert share.ours == pytest.approx(100 * refused / (admitted + refused))
    assert use.details["budget_rps"] == QUOTA_RPS - 1
    # Creates and cancels made while polls saturate the budget reached the upstream.
    assert creates.details["samples"] == priority.SAMPLES
    assert cancels.details["samples"] == min(priority.SAMPLES, JOBS)
    for latency in (creates, cancels):
        assert 0 < latency.details["p50_s"] <= latency.ours


async def test_the_operator_budget_is_one_under_the_quota_with_no_burst() -> None:
    assert fleet.operator_settings(20) == fleet.FleetBudget(upstream_rps=19.0, upstream_burst=1)
    with pytest.raises(ValueError, match="at least 2"):
        fleet.operator_settings(1)


async def test_demand_under_the_quota_is_refused() -> None:
    with pytest.raises(ValueError, match="do not exceed the quota"):
        await fleet.measure(quota_rps=20, jobs=10)
