"""A closed-loop load generator: `concurrency` callers, each calling as fast as answered."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_s: float
    p99_s: float
    warmup: int = 0
    """Calls made before the timed ones."""
    server_cpu_s: float = 0.0
    """CPU time the server process used over the run, warm-up included, when measured."""

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def server_cpu_us(self) -> float:
        """Server CPU microseconds per call, warm-up included."""
        return self.server_cpu_s / (self.requests + self.warmup) * 1e6


async def run_load(
    call: Callable[[], Awaitable[object]], *, concurrency: int, requests: int, warmup: int
) -> LoadResult:
    """Warm up with `warmup` calls, then time `requests` calls spread over the callers."""
    await _drive(call, concurrency, warmup, [])
    latencies: list[float] = []
    started = time.perf_counter()
    await _drive(call, concurrency, requests, latencies)
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return LoadResult(requests, elapsed, cuts[49], cuts[98], warmup)


async def _drive(
    call: Callable[[], Awaitable[object]], concurrency: int, total: int, latencies: list[float]
) -> None:
    remaining = total

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
