"""The refusal brake: a caller who keeps being refused is answered more and more slowly.

Each principal has a bucket of refusals, `TUNING_TENANT_REFUSALS_PER_S` with a burst of
`TUNING_TENANT_REFUSAL_BURST`. Every call of it that ends with a caller's-mistake status
(`REFUSAL_CODES`) spends one, and one more per REFUSAL_BYTES of request it carried. While
the bucket is in debt, the principal's next calls wait, after authentication and before a
byte of their request is read, until the debt is paid, for MAX_WAIT_S at most; then they
go on as usual. Nothing is refused for being braked: a caller sees the same answers,
later.

Why: the noisy-neighbour bench (bench/noisy_neighbour.py) runs one tenant's client that
sends, in closed loops, requests that are each refused (1 MB names, 100,000-label
creates, crafted page tokens and filters, invalid uploads). Every refusal was cheap on its
own, but a refused caller comes straight back, and together they kept the replica's CPU
near 90% and another tenant's p99 read at 4-7x its quiet p99. Held back, a looping caller
costs an idle coroutine per call and sends no faster than its refusals are allowed. The
buggy client that retries a refused call in a tight loop is the everyday form of this.

Calls refused by authentication have no principal: they share one tighter bucket
(UNAUTHENTICATED_PER_S, UNAUTHENTICATED_BURST), and their refusal itself waits out its
debt, so guessing tokens is slow too. That bucket slows only calls that are refused
anyway; a known principal's calls never wait on it. Health and reflection
(service.auth.OPEN_METHODS) are never braked.

Per replica, in memory, like the receive budget (service.receive_budget): it protects this
replica's CPU and needs no Redis round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc

from service.token_buckets import TokenBuckets

MAX_WAIT_S = 2.0
"""The longest one call is held back; a debt never grows past this much waiting."""
UNAUTHENTICATED = "\x00unauthenticated"
"""The bucket of calls refused before a principal was known (no principal's id)."""
UNAUTHENTICATED_PER_S = 2.0
UNAUTHENTICATED_BURST = 10
"""The budget all calls refused by authentication share: tighter than a principal's,
since each such call is a stranger's and is refused whatever it carries, and an
unauthenticated create may carry the largest message the server lets in (the bench's
unauthenticated attacker alone, at a principal's 10 a second, took the victim's p99 to
4x)."""
REFUSAL_BYTES = 64 * 1024
"""A refused call is counted as one refusal more for each this many request bytes it
carried: a refused megabyte costs the replica what seventeen small refusals do (parsing,
validating: the bench's 100,000-label creates and 4 MB invalid uploads, at one refusal
each, still took the victim's p99 to 2.4x)."""
REFUSAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
"""Statuses that say the caller asked for something it should not have. ALREADY_EXISTS
and ABORTED are left out: idempotent replays and lost races are what careful callers do."""


class RefusalBrake:
    """Refusals per second per principal (`refusals_per_s` <= 0: no brake)."""

    def __init__(
        self,
        refusals_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        max_debt = max(refusals_per_s, 0.0) * MAX_WAIT_S
        self._buckets = TokenBuckets(refusals_per_s, burst, max_debt=max_debt, clock=clock)
        strangers_per_s = UNAUTHENTICATED_PER_S if refusals_per_s > 0 else 0.0
        self._strangers = TokenBuckets(
            strangers_per_s,
            UNAUTHENTICATED_BURST,
            max_debt=strangers_per_s * MAX_WAIT_S,
            clock=clock,
        )

    def wait_s(self, principal: str) -> float:
        """How long `principal`'s next call (UNAUTHENTICATED: next refusal by
        authentication) is to wait; 0: not at all."""
        buckets = self._strangers if principal == UNAUTHENTICATED else self._buckets
        return min(buckets.debt_s(principal), MAX_WAIT_S)

    def turn(self, principal: str) -> Awaitable[None] | None:
        """None if `principal`'s call may go on now; else the wait to await first (a
        call on the hot path makes no coroutine)."""
        wait_s = self.wait_s(principal)
        return None if wait_s <= 0 else asyncio.sleep(wait_s)

    def ended(self, principal: str, code: grpc.StatusCode | None, received_bytes: int) -> None:
        """Count a call of `principal` that ended with `code` (None: OK) after the replica
        read `received_bytes` of its request: a refusal costs one, and one more for each
        REFUSAL_BYTES."""
        if principal and principal != UNAUTHENTICATED and code in REFUSAL_CODES:
            self._buckets.take(principal, 1 + received_bytes / REFUSAL_BYTES)

    def unauthenticated(self) -> Awaitable[None] | None:
        """Count a call refused before it had a principal; the wait before its answer."""
        wait_s = self.charge_unauthenticated()
        return None if wait_s <= 0 else asyncio.sleep(wait_s)

    def charge_unauthenticated(self) -> float:
        """Count a call refused before it had a principal; how long its answer waits."""
        self._strangers.take(UNAUTHENTICATED, 1)
        return self.wait_s(UNAUTHENTICATED)
