"""How fast this machine runs plain Python, measured beside the figures.

Ratios to a baseline measured in the same run carry over from one machine to another;
figures held to a stated absolute bound (worker CPU per poll, latency added, idle CPU)
do not. The machines this project is measured on have differed by four times in speed,
so every run records one number to read those figures by: the time a loop of plain
Python additions takes per addition, best of a few tries, at the start and at the end
of the run (a shared machine can change speed in between).
"""

from __future__ import annotations

import time

ADDITIONS = 2_000_000
TRIES = 3


def ns_per_addition(additions: int = ADDITIONS, tries: int = TRIES) -> float:
    """The best of `tries` runs of `s += i` over `additions` numbers, per addition, in ns."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        total = 0
        for i in range(additions):
            total += i
        best = min(best, time.perf_counter() - started)
    return best / additions * 1e9
