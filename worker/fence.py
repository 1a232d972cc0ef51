"""Fencing that reaches the upstream: no side effect without a live lease.

Redis refuses a write from a worker that lost a job's lease (core.redis.job_store), but an
upstream create, cancel or delete is outside Redis: a worker paused past its lease (a
SIGSTOP, a long GC, a VM migration) would go on to make it when it resumes. So a visit
holds a `Fence`: the monotonic time until which its lease is surely still its own (the
lease runs from when the renewal was *sent*, less a safety margin for clock drift). The
keeper moves it forward after every renewal, and marks it lost when the lease is gone.

Every upstream call with a side effect checks the fence immediately before its request
leaves (`check`, called by the provider's HTTP client after any wait for the rate
limiter), and is given no more time than the fence has left (`remaining_s`): a call
cannot start after the lease may have passed to another worker. The monotonic clock goes
on while a process is stopped, so a worker that resumes after a pause finds its fence
expired and sends nothing. A side effect attempted with no fence at all is a bug
(`FenceMissing`), never allowed through.

Kept in a context variable, like core.runtime.deadline, so the provider interface need not
carry it; each visit (and each reconciler pass) runs in a task of its own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from core.errors import LeaseLost

SAFETY_MARGIN = 0.2
"""The share of a lease the fence does not trust: Redis and this process may disagree on
how long the lease has run, and the request still has to reach the upstream."""


class FenceMissing(RuntimeError):
    """An upstream side effect was attempted outside any fence: a bug in the caller."""


class Fence:
    """What one holder (a visit, a reconciler pass) may still do upstream, and until when."""

    def __init__(self, what: str, valid_until: float) -> None:
        self.what = what
        self._valid_until = valid_until
        self._lost = False

    @classmethod
    def for_lease(cls, what: str, sent_at: float, lease_s: float) -> Fence:
        """A fence for a lease taken (or renewed) by a request sent at monotonic `sent_at`."""
        return cls(what, valid_until_of(sent_at, lease_s))

    def extend(self, sent_at: float, lease_s: float) -> None:
        """The lease was renewed by a request sent at `sent_at`: trust it that much longer."""
        if not self._lost:
            self._valid_until = max(self._valid_until, valid_until_of(sent_at, lease_s))

    def lose(self) -> None:
        """The lease is gone (taken over, or given up): nothing more may be done upstream."""
        self._lost = True

    @property
    def lost(self) -> bool:
        return self._lost

    def remaining_s(self, now: float | None = None) -> float:
        """Seconds the holder may still act (0 once lost or expired)."""
        if self._lost:
            return 0.0
        return max(0.0, self._valid_until - (time.monotonic() if now is None else now))

    def check(self, action: str) -> float:
        """Seconds left to make `action`; LeaseLost, before anything is sent, if none."""
        left = self.remaining_s()
        if left <= 0:
            why = "was lost" if self._lost else "may have expired"
            raise LeaseLost(f"{self.what}: not sending {action}: the lease {why}")
        return left


def valid_until_of(sent_at: float, lease_s: float) -> float:
    return sent_at + lease_s * (1 - SAFETY_MARGIN)


_current: ContextVar[Fence | None] = ContextVar("upstream_fence", default=None)


@contextlib.contextmanager
def holding(fence: Fence) -> Iterator[Fence]:
    """Upstream side effects inside the block are fenced by `fence`."""
    token = _current.set(fence)
    try:
        yield fence
    finally:
        _current.reset(token)


def current(action: str) -> Fence:
    """The fence `action` runs under; FenceMissing if there is none."""
    fence = _current.get()
    if fence is None:
        raise FenceMissing(f"{action}: an upstream side effect outside any fence")
    return fence


def check(action: str) -> float:
    """Called right before a side effect leaves: the seconds the current fence has left.

    LeaseLost if the fence is lost or expired; FenceMissing if there is none.
    """
    return current(action).check(action)
