"""The caller's remaining time, carried to every upstream request.

A visit to a job sets a deadline (`within`); each upstream HTTP request then waits at
most the time that is left, not a fixed timeout that could outlive its caller. Kept in a
context variable so the provider interface need not thread it through every method,
much as gRPC carries a call's deadline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("upstream_deadline", default=None)


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Upstream calls inside the block end by `seconds` from now (or an outer, earlier deadline)."""
    at = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(at if outer is None else min(outer, at))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining_s() -> float | None:
    """Seconds left before the deadline (may be negative), or None without one."""
    at = _deadline.get()
    return None if at is None else at - time.monotonic()
