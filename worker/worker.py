"""The worker loop: claim due jobs, visit each under a lease, reschedule, repeat.

Delivery is at least once: a claimed job whose worker dies comes due again when the
claim's lease runs out (core.redis.schedule), and the job's own lease (core.redis.job_store) makes
sure that only one worker acts on it at a time and that a worker which lost its lease
can no longer write. Upstream side effects are idempotent (the tuned model id is the
job's own), so a second delivery repeats nothing that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from core.domain.job import JOB_NAME_PREFIX
from core.errors import LeaseHeld, LeaseLost, TuningError
from core.redis.admission import Admission
from core.redis.job_store import JobStore, Lease
from core.redis.schedule import Schedule
from core.runtime import logs
from core.runtime.settings import Settings
from worker.steps import Steps
from worker.sweep import Sweeper

log = logging.getLogger(__name__)


class Worker:
    """Runs visits concurrently, up to `settings.worker_concurrency` at a time."""

    def __init__(
        self,
        store: JobStore,
        schedule: Schedule,
        steps: Steps,
        settings: Settings,
        *,
        sweeper: Sweeper | None = None,
        admission: Admission | None = None,
    ):
        self._store = store
        self._schedule = schedule
        self._steps = steps
        self._settings = settings
        self._sweeper = sweeper
        self._admission = admission
        self._next_sweep = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event, *, grace_s: float = 30.0) -> None:
        """Work until `stop` is set, then let visits in progress finish within `grace_s`.

        A worker that starts sweeps first, then every `sweep_interval_s`.
        """
        while not stop.is_set():
            await self._maybe_sweep()
            await self._admit()
            free = self._settings.worker_concurrency - len(self._tasks)
            claimed = await self._claim(free) if free > 0 else []
            for tenant, job_id in claimed:
                task = asyncio.create_task(self.visit(tenant, job_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if len(claimed) < free or free <= 0:
                await self._idle(stop)
        await self._drain(grace_s)

    async def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if self._sweeper is None or now < self._next_sweep:
            return
        self._next_sweep = now + self._settings.sweep_interval_s
        try:
            await self._sweeper.sweep()
        except TuningError as exc:
            log.warning("sweep failed: %s", exc.message)
            self._next_sweep = now + min(5.0, self._settings.sweep_interval_s)

    async def _admit(self) -> None:
        """One admission round: at most one queued job per tenant starts (core.redis.admission)."""
        if self._admission is None:
            return
        try:
            await self._admission.round()
        except TuningError as exc:
            log.warning("admission round failed: %s", exc.message)

    async def _claim(self, count: int) -> list[tuple[str, str]]:
        try:
            return await self._schedule.claim(count, self._settings.claim_lease_s)
        except TuningError as exc:
            log.warning("cannot claim work: %s", exc.message)
            return []

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for the next look: a visit finishing, `stop`, or the idle interval."""
        waiter = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait(
                [waiter, *self._tasks],
                timeout=self._settings.worker_idle_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter

    async def _drain(self, grace_s: float) -> None:
        if not self._tasks:
            return
        log.info("waiting up to %.1fs for %d visits", grace_s, len(self._tasks))
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in pending:
            task.cancel()  # Its claim and lease run out; another worker takes the job.
        await asyncio.gather(*pending, return_exceptions=True)

    async def visit(self, tenant: str, job_id: str) -> None:
        """Take the job's lease, advance it, reschedule it, give the lease back."""
        # Each visit is a task of its own: these label every log line about this job.
        logs.tenant.set(tenant)
        logs.job.set(JOB_NAME_PREFIX + job_id)
        try:
            acquired = await self._store.acquire(tenant, job_id, self._settings.job_lease_s)
        except LeaseHeld:
            return  # Another worker is on it and will reschedule it.
        except TuningError as exc:
            log.warning("cannot take job %s/%s: %s", tenant, job_id, exc.message)
            return
        if acquired is None:
            await self._schedule.remove(tenant, job_id)
            return
        lease, current = acquired
        if lease.deliveries > self._settings.max_unfinished_visits:
            await self._steps.dead_letter(lease, current.job)
            await asyncio.shield(self._finish(lease, None, finished=True))
            return
        keeper = asyncio.create_task(self._keep(lease))
        finished = True
        try:
            next_s = await self._steps.advance(lease, current.job)
        except LeaseLost:
            log.warning("job %s/%s: lease lost to another worker; stopping", tenant, job_id)
            return
        except Exception:  # A bug must not kill the worker; the job comes due again,
            log.exception("job %s/%s: unexpected error", tenant, job_id)  # and counts.
            next_s, finished = self._settings.retry_max_s, False
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await asyncio.shield(self._finish(lease, next_s, finished=finished))

    async def _finish(self, lease: Lease, next_s: float | None, *, finished: bool) -> None:
        try:
            if next_s is None:
                await self._schedule.remove(lease.tenant, lease.job_id)
            else:
                await self._schedule.due_in(lease.tenant, lease.job_id, next_s)
            await self._store.release(lease, finished=finished)
        except TuningError as exc:
            # The claim's lease runs out and the job comes due again: nothing is lost.
            log.warning("job %s: could not reschedule: %s", lease.job_id, exc.message)

    async def _keep(self, lease: Lease) -> None:
        """Renew the lease (and push the claim out) every third of it while a visit runs."""
        lease_s, claim_s = self._settings.job_lease_s, self._settings.claim_lease_s
        while True:
            await asyncio.sleep(min(lease_s, claim_s) / 3)
            try:
                if not await self._store.renew(lease, lease_s):
                    log.warning("job %s: lease taken over", lease.job_id)
                    return
                await self._schedule.due_in(
                    lease.tenant, lease.job_id, claim_s, only_if_present=True
                )
            except TuningError as exc:
                log.warning("job %s: cannot renew lease: %s", lease.job_id, exc.message)
