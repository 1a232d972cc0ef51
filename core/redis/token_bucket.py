"""A token bucket in Redis that every worker of the fleet draws from.

The upstream's quota is per project, not per pod: however many workers run, together
they must stay under it. Each upstream request takes a token from one bucket in Redis
(core.redis.scripts.TOKEN_BUCKET). Short waits are spent in place; a wait longer than
`max_wait_s` is refused, so that the job comes back later through the schedule instead
of holding a worker's slot.

A token that must be waited for is a reserved moment: the bucket spaces reservations `1 / rate`
apart, and each caller sleeps until its own. A caller that wakes up late for it (its process
was descheduled, collected garbage, or its event loop was busy) would send together with the
callers whose moments came after, and an upstream that counts requests per second would see
the fleet's requests bunched above the rate, though the bucket handed them out evenly. So a
caller that wakes more than `late_s` after its moment drops that token and takes another, at
the back of the line: the upstream sees requests about as evenly spaced as the bucket granted
them. The token dropped is spent (the budget errs on the side of the upstream's quota), and a
retake that would wait longer than `max_wait_s` is refused like any other.

A token may also come paid for: the schedule's claim takes one for each poll it hands out
(core.redis.schedule), in the same step, and the visit runs `with prepaid(at_s)`. Its first
`acquire` spends that token (waiting for its moment, and taking another if it woke too late)
instead of asking Redis again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar

from core.errors import RateLimited
from core.redis.client import Redis
from core.redis.scripts import Scripts, bucket_hold_call, token_bucket_call

Sleep = Callable[[float], Awaitable[None]]

# Tokens one `acquire` may take; the last is used however late it wakes up.
MAX_TAKES = 3
DEFAULT_BACKGROUND_WAIT_S = 0.25
"""The longest a request that is not urgent waits for a token: how far polls may queue
ahead of a create or a cancel."""


class _Prepaid:
    """A token taken for this task's visit, usable from `at_s` (monotonic), until spent."""

    def __init__(self, at_s: float) -> None:
        self.at_s: float | None = at_s

    def spend(self) -> float | None:
        at_s, self.at_s = self.at_s, None
        return at_s


_PREPAID: ContextVar[_Prepaid | None] = ContextVar("prepaid_token", default=None)


@contextlib.contextmanager
def prepaid(at_s: float | None) -> Iterator[None]:
    """In this block the first upstream request has a token already, usable from `at_s`
    (monotonic seconds; None: no token was taken)."""
    token = _PREPAID.set(None if at_s is None else _Prepaid(at_s))
    try:
        yield
    finally:
        _PREPAID.reset(token)


def _spend_prepaid() -> float | None:
    held = _PREPAID.get()
    return None if held is None else held.spend()


class RedisTokenBucket:
    """`rate_per_s` requests per second across the fleet, bursts of `burst`.

    `max_wait_s` and `background_wait_s` bound the wait of an urgent request and of any
    other (see `acquire`). `bucket_key` names the bucket's hash (core.redis.keys.rate_limit).
    `late_s`: how late after its reserved moment a caller may wake and still use its token
    (see the module docstring); `monotonic` and `sleep` are the seams for time.
    """

    def __init__(
        self,
        redis: Redis,
        bucket_key: str,
        *,
        rate_per_s: float,
        burst: int,
        max_wait_s: float,
        background_wait_s: float = DEFAULT_BACKGROUND_WAIT_S,
        late_s: float = 0.05,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._scripts = Scripts(redis)
        self._bucket_key = bucket_key
        self._rate_per_s = rate_per_s
        self._burst = max(burst, 1)
        self._max_wait_ms = int(max_wait_s * 1000)
        self._background_wait_ms = int(min(background_wait_s, max_wait_s) * 1000)
        self._late_s = late_s
        self._monotonic = monotonic
        self._sleep = sleep

    async def acquire(self, *, urgent: bool = True) -> None:
        """Wait for a token; RateLimited if the wait would be longer than allowed.

        A token waited for and woken up to more than `late_s` late is dropped and another
        taken; at most MAX_TAKES in all. A token free at once is used at once.

        A request that is not `urgent` (a poll) may wait at most `background_wait_s`, an
        urgent one (a create, a cancel) `max_wait_s`. Reservations are kept in turn, so
        polls never hold more than `background_wait_s` of the budget ahead of an urgent
        request: however many polls there are, a create waits at most that long behind
        them, and the polls refused come back later (the shortage is theirs).

        A prepaid token (`prepaid`) is spent first, if there is one.
        """
        at_s = _spend_prepaid()
        if at_s is not None and await self._use(at_s):
            return
        for _ in range(MAX_TAKES):
            wait_s = await self._take_s(urgent)
            if not wait_s:
                return
            # The moment was set when the script ran, a little before its answer came.
            if await self._use(self._monotonic() + wait_s):
                return

    async def _use(self, due_s: float) -> bool:
        """Wait for a token's moment `due_s`; False if it woke too late to use it."""
        wait_s = due_s - self._monotonic()
        if wait_s > 0:
            await self._sleep(wait_s)
        return self._monotonic() - due_s <= self._late_s

    async def hold_off(self, delay_s: float) -> None:
        """The upstream asked the fleet to wait `delay_s` (a 429's RetryInfo): no token is
        handed out before then, to any worker."""
        call = bucket_hold_call(
            bucket_key=self._bucket_key,
            rate_per_s=self._rate_per_s,
            burst=self._burst,
            hold_ms=int(delay_s * 1000),
        )
        await self._scripts.run(call)

    async def _take_s(self, urgent: bool) -> float:
        """Take a token: seconds until it may be used; RateLimited if that is too long."""
        call = token_bucket_call(
            bucket_key=self._bucket_key,
            rate_per_s=self._rate_per_s,
            burst=self._burst,
            max_wait_ms=self._max_wait_ms if urgent else self._background_wait_ms,
            take=True,
        )
        wait_ms = int(await self._scripts.run(call))
        if wait_ms < 0:
            raise RateLimited("upstream request budget spent", retry_after_s=-wait_ms / 1000)
        return wait_ms / 1000


class Unlimited:
    """No limit (a rate of 0 configured)."""

    async def acquire(self, *, urgent: bool = True) -> None:
        del urgent

    async def hold_off(self, delay_s: float) -> None:
        """Nothing to hold: each request's own retry honours the delay."""
        del delay_s
