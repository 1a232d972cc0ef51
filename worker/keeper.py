"""Keeping a visit's lease: renew it while the visit runs, stop the moment it is told to.

The keeper renews the job's lease (and pushes the claim out) every `interval_s`, moving
the visit's fence (worker.fence) forward after each renewal by the time the renewal was
sent, and marks the fence lost when the renewal finds the lease taken over.

It is stopped by an `asyncio.Event`, not by cancelling its task. redis-py sends every
command through `asyncio.wait_for`, and on Python 3.11 `wait_for` swallows a cancellation
that lands just as the command's reply arrives (fixed in 3.12): the cancelled keeper went
on looping, and the visit that awaited it hung, for as long as 17 minutes. So the keeper
looks at its event after every await, and also leaves when its task has a cancellation
pending (`Task.cancelling()` stays non-zero even after `wait_for` ate the CancelledError);
the visit sets the event and waits for the keeper for a bounded time only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from core.errors import LeaseLost, TuningError
from core.redis.job_store import JobStore, Lease
from core.redis.schedule import Schedule
from worker.fence import Fence

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews each lease by its own `lease_s`, and pushes its claim `claim_s` ahead, every
    `interval_s`."""

    def __init__(
        self, store: JobStore, schedule: Schedule, *, claim_s: float, interval_s: float
    ) -> None:
        self._store = store
        self._schedule = schedule
        self._claim_s = claim_s
        self._interval_s = interval_s

    def watch(self, lease: Lease, held: Fence) -> Keeping:
        """Keep `lease` for one visit, from `interval_s` on: a visit that ends sooner
        (most polls) costs a timer, not a task."""
        return Keeping(self, lease, held)

    async def keep(
        self, lease: Lease, held: Fence, stop: asyncio.Event, *, pause_first: bool = True
    ) -> None:
        """Renew every `interval_s` (the first at once unless `pause_first`) until `stop`
        is set; return sooner only when the lease is lost (`held` is then lost too). A job
        found gone is not renewed: the visit meets JobGone itself."""
        pause = pause_first
        while not _stopping(stop):
            if pause:
                await _pause(stop, self._interval_s)
            pause = True
            if _stopping(stop) or not await self._renew(lease, held):
                return

    @property
    def interval_s(self) -> float:
        return self._interval_s

    async def _renew(self, lease: Lease, held: Fence) -> bool:
        """One renewal; False if the lease was lost."""
        sent_at = time.monotonic()
        try:
            if await self._store.hold(lease, lease.lease_s) is None:
                return True
            held.extend(sent_at, lease.lease_s)
            await self._schedule.due_in(
                lease.tenant, lease.job_id, self._claim_s, only_if_present=True
            )
        except LeaseLost:
            log.warning("job %s: lease taken over; stopping the visit", lease.job_id)
            held.lose()
            return False
        except TuningError as exc:  # The fence runs out by itself if this goes on.
            log.warning("job %s: cannot renew lease: %s", lease.job_id, exc.message)
        return True


class Keeping:
    """One visit's keeping of its lease (`LeaseKeeper.watch`): a timer until the first
    renewal is due, the keeper's task from then on. `lost` is done when that task ended
    before it was told to stop: the lease was lost."""

    def __init__(self, keeper: LeaseKeeper, lease: Lease, held: Fence) -> None:
        loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = loop.create_future()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timer = loop.call_later(keeper.interval_s, self._start, keeper, lease, held)

    def stop(self) -> asyncio.Task[None] | None:
        """Stop keeping: the keeper's task, to wait for (a bounded time), if it began."""
        self._timer.cancel()
        self._stop.set()
        return self._task

    def _start(self, keeper: LeaseKeeper, lease: Lease, held: Fence) -> None:
        self._task = asyncio.create_task(keeper.keep(lease, held, self._stop, pause_first=False))
        self._task.add_done_callback(self._ended)

    def _ended(self, _: asyncio.Task[None]) -> None:
        if not self._stop.is_set() and not self.lost.done():
            self.lost.set_result(None)


def _stopping(stop: asyncio.Event) -> bool:
    task = asyncio.current_task()
    return stop.is_set() or (task is not None and task.cancelling() > 0)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
