"""Polls pace themselves to the fleet's upstream budget, and work goes ahead of them."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import SystemFactory
from tests.harness import State, System

BUDGET_RPS = 5.0
WINDOW_S = 2.0
STATUS_ROUTES = ("operations.get", "tunedModels.get")


async def status_requests(system: System) -> int:
    return sum([await system.upstream_requests(route) for route in STATUS_ROUTES])


async def test_polls_wanting_more_than_the_budget_get_the_budget_and_creates_go_first(
    make_system: SystemFactory,
) -> None:
    async with make_system(
        upstream_rps=BUDGET_RPS, upstream_burst=1, poll_min_s=0.05, poll_max_s=0.05
    ) as system:
        jobs = [await system.create(display_name=f"job {n}") for n in range(10)]
        for job in jobs:  # 10 jobs asking for a poll every 0.05 s: 200 a second wanted
            await system.wait_for(job.name, {State.RUNNING})
        before = await status_requests(system)
        await asyncio.sleep(WINDOW_S)  # the window the rate is measured over
        polled = await status_requests(system) - before
        assert BUDGET_RPS * WINDOW_S * 0.5 <= polled <= BUDGET_RPS * WINDOW_S + 2
        started = time.monotonic()
        late = await system.create(display_name="late")
        await system.wait_for(late.name, {State.RUNNING})
        assert time.monotonic() - started < 3.0  # the create went ahead of the polls
