"""Bounds on UploadDataset streams: how many are open, and how slowly they may send.

A client-streaming call holds a task, its chunks so far and, later, a validation for as long
as the client keeps it open. `UploadSlots` caps the streams open on this replica, per tenant
and all together, and refuses one more at once, before its body is read. `paced` ends a
stream that pauses too long between messages or takes too long overall, so that a client
that opens a stream and goes quiet gives its slot back.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TypeVar

from core.errors import DeadlineExceeded, Reason, ResourceExhausted

RETRY_AFTER_S = 1.0
"""The RetryInfo delay of a refused upload: about what a 4 MB upload takes to be checked."""
REPLICA_SUBJECT = "replica:uploads"

_T = TypeVar("_T")


class UploadSlots:
    """The UploadDataset streams open on this replica; one event loop, so no lock."""

    def __init__(self, *, per_tenant: int, per_replica: int) -> None:
        self._per_tenant = per_tenant
        self._per_replica = per_replica
        self._open: Counter[str] = Counter()  # only tenants with a stream open

    @contextmanager
    def hold(self, tenant: str) -> Iterator[None]:
        """A slot for one stream of `tenant` while the block runs; RESOURCE_EXHAUSTED if none."""
        self.check(tenant)
        self._open[tenant] += 1
        try:
            yield
        finally:
            self._open[tenant] -= 1
            if not self._open[tenant]:
                del self._open[tenant]

    def check(self, tenant: str) -> None:
        """RESOURCE_EXHAUSTED (TOO_MANY_UPLOADS) unless `tenant` may open one more stream."""
        if self._open.total() >= self._per_replica:
            raise ResourceExhausted(
                f"this replica has {self._per_replica} uploads open, its most; retry shortly",
                retry_after_s=RETRY_AFTER_S,
                reason=Reason.TOO_MANY_UPLOADS,
                subject=REPLICA_SUBJECT,
            )
        if self._open[tenant] >= self._per_tenant:
            raise ResourceExhausted(
                f"tenant {tenant!r} has {self._per_tenant} uploads open, its most on one "
                "replica; finish one first",
                retry_after_s=RETRY_AFTER_S,
                reason=Reason.TOO_MANY_UPLOADS,
                subject=f"tenant:{tenant}",
            )


async def paced(parts: AsyncIterator[_T], *, idle_s: float, total_s: float) -> AsyncIterator[_T]:
    """`parts`, ended with DEADLINE_EXCEEDED if the next one takes over `idle_s` to come
    or all of them over `total_s` (seconds of the event loop's clock)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_s
    while True:
        wait_s = min(idle_s, deadline - loop.time())
        try:
            async with asyncio.timeout(max(wait_s, 0.0)):
                part = await anext(parts)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _timed_out(idle=wait_s == idle_s, idle_s=idle_s, total_s=total_s) from None
        yield part


def _timed_out(*, idle: bool, idle_s: float, total_s: float) -> DeadlineExceeded:
    if idle:
        return DeadlineExceeded(
            f"the upload sent nothing for {idle_s:g}s; send the chunks back to back",
            retry_after_s=0.0,
        )
    return DeadlineExceeded(
        f"the upload took longer than {total_s:g}s; send the dataset faster",
        retry_after_s=0.0,
    )
