"""A clock the test moves by hand, for everything that takes a `Clock`."""

from __future__ import annotations

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
