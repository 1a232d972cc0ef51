"""Clocks the test moves by hand: for everything that takes a `Clock`, and a monotonic
clock with a sleep that only records, for the token bucket."""

from __future__ import annotations

import time

# 2026-11-21T13:40:00Z
START_S = 1_795_268_400.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now_s: float = START_S) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now_s += seconds


class LateSleeper:
    """A fake monotonic clock and sleep: wakes `late_s` late the first `late_times` times."""

    def __init__(self, late_s: float, late_times: int) -> None:
        self.now_s = time.monotonic()
        self.late_s = late_s
        self.late_times = late_times
        self.waits_s: list[float] = []

    def monotonic(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.waits_s.append(seconds)
        late = self.late_s if len(self.waits_s) <= self.late_times else 0.0
        self.now_s += seconds + late
