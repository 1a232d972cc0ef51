"""A token bucket in Redis that every worker of the fleet draws from.

The upstream's quota is per project, not per pod: however many workers run, together
they must stay under it. Each upstream request takes a token from one bucket in Redis
(core.lua.TOKEN_BUCKET). Short waits are spent in place; a wait longer than
`max_wait_s` is refused, so that the job comes back later through the schedule instead
of holding a worker's slot.
"""

from __future__ import annotations

import asyncio

from core.errors import Retryable
from core.keys import Keys
from core.lua import TOKEN_BUCKET
from core.redis_client import Redis, translated_errors


class RateLimited(Retryable):
    """The fleet's upstream budget is spent for now."""

    reason = "UPSTREAM_RATE_LIMITED"


class RedisTokenBucket:
    """`rate_per_s` requests per second across the fleet, bursts of `burst`."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        name: str,
        *,
        rate_per_s: float,
        burst: int,
        max_wait_s: float,
    ) -> None:
        self._key = keys.rate_limit(name)
        self._script = redis.register_script(TOKEN_BUCKET)
        self._args: list[float | int] = [rate_per_s, max(burst, 1), int(max_wait_s * 1000)]

    async def acquire(self) -> None:
        """Wait for a token; RateLimited if the wait would be longer than allowed."""
        await self._take(cost=1)

    async def check(self) -> None:
        """RateLimited if `acquire` would be refused now; takes nothing."""
        await self._take(cost=0)

    async def _take(self, *, cost: int) -> None:
        with translated_errors():
            wait_ms = int(await self._script(keys=[self._key], args=[*self._args, cost]))
        if wait_ms < 0:
            raise RateLimited("upstream request budget spent", retry_after_s=-wait_ms / 1000)
        if wait_ms and cost:
            await asyncio.sleep(wait_ms / 1000)


class Unlimited:
    """No limit (a rate of 0 configured)."""

    async def acquire(self) -> None:
        return None
