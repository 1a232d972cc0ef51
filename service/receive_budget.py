"""Each tenant's share of what one replica receives: a token bucket of request bytes.

Every request is charged, by its size, to the tenant who sent it, against
`TUNING_TENANT_RECEIVE_BYTES_PER_S` with a burst of twice the largest message; a bucket
may go into debt by one message. While a tenant's bucket is in debt its next unary call
waits, before a byte of its request is read, until the debt is paid, and is refused
RESOURCE_EXHAUSTED (RECEIVE_RATE_EXCEEDED, RetryInfo: when the debt is paid) if that takes
longer than MAX_WAIT_S (service.wrapping's
`read_when_admitted`), and its uploads are read no faster than the rate (each message
waits out the debt before the next is read, so gRPC's flow control slows the sender).

Why bytes: bytes are what the replica's CPU goes on before any handler can judge a
request. The noisy-neighbour bench measured a tenant sending 1 MB names, 100,000-label
creates and 4 MB invalid uploads in a closed loop saturating the API's event loop, and
another tenant's p99 read rising sevenfold, though each request was refused. A tenant's
reads and ordinary creates are far below the rate; a bulk upload is slowed, not refused.

Per replica, in memory: it protects this replica's event loop, needs no Redis round trip,
and holds one bucket per principal the tenants file names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token

from core.errors import ReceiveRateExceeded
from service.token_buckets import TokenBuckets

MAX_WAIT_S = 2.0
"""The longest a call waits for its tenant's debt to be paid before it is refused."""

_call_bytes: ContextVar[int] = ContextVar("call_bytes", default=0)


def count_call_bytes() -> Token[int]:
    """Start counting the request bytes charged to the RPC being handled (the observer
    does, as each call begins); `Token` ends it (`stop_counting`)."""
    return _call_bytes.set(0)


def received_bytes() -> int:
    """The request bytes charged since `count_call_bytes`, in this call's context."""
    return _call_bytes.get()


def stop_counting(started: Token[int]) -> None:
    _call_bytes.reset(started)


class ReceiveBudget:
    """Request bytes per second per tenant (`bytes_per_s` <= 0: no limit)."""

    def __init__(
        self,
        bytes_per_s: int,
        burst_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets = TokenBuckets(bytes_per_s, burst_bytes, clock=clock)

    def admit(self, tenant: str) -> None:
        """ReceiveRateExceeded if `tenant` is in debt: its call is not to be read."""
        wait_s = self._buckets.debt_s(tenant)
        if wait_s > 0:
            rate = int(self._buckets.rate)
            raise ReceiveRateExceeded(tenant, bytes_per_s=rate, retry_after_s=wait_s)

    def turn(self, tenant: str) -> Awaitable[None] | None:
        """None if `tenant` may be read now; else what to await: its debt waited out, up
        to MAX_WAIT_S, and then `admit` (a call on the hot path makes no coroutine).

        A caller in a closed loop that were refused at once would come straight back, and
        its refusals alone could keep the event loop busy; held back, its calls cost an
        idle coroutine each, and it sends no faster than its rate.
        """
        wait_s = self._buckets.debt_s(tenant)
        return None if wait_s <= 0 else self._wait(tenant, wait_s)

    async def _wait(self, tenant: str, wait_s: float) -> None:
        await asyncio.sleep(min(wait_s, MAX_WAIT_S))
        self.admit(tenant)

    def charge(self, tenant: str, size_bytes: int) -> None:
        """Count a request of `size_bytes` that `tenant` sent (it may leave a debt)."""
        self._buckets.take(tenant, size_bytes)
        _call_bytes.set(_call_bytes.get() + size_bytes)

    async def pace(self, tenant: str, size_bytes: int) -> None:
        """Charge a streamed message, then wait out any debt before the next is read."""
        self.charge(tenant, size_bytes)
        wait_s = self._buckets.debt_s(tenant)
        if wait_s > 0:
            await asyncio.sleep(wait_s)
