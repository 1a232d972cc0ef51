"""The worker loop: claim due jobs, visit each under a lease, reschedule, repeat.

Delivery is at least once: a claimed job whose worker dies comes due again when the
claim's lease runs out (core.redis.schedule), and the job's own lease (core.redis.job_store) makes
sure that only one worker acts on it at a time and that a worker which lost its lease
can no longer write. Upstream side effects are idempotent (the tuned model id is the
job's own), so a second delivery repeats nothing that matters.

A visit's reschedule is not written at once: it goes with the worker's next claim
(core.redis.schedule.Moves), and a poll's last write gives the lease back, so a usual poll
costs the worker two Redis round trips besides its share of a claim.

A visit also holds a fence (worker.fence) for its upstream side effects: taken with the
lease, moved forward by the keeper (worker.keeper) at each renewal, lost when the lease
is lost or the visit passes its hard deadline (`visit_timeout_s`). A visit never waits
unboundedly on a task it stops: a cancel can be swallowed on Python 3.11 (worker.keeper).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Span

from core.domain.job import JOB_NAME_PREFIX, Job
from core.errors import LeaseHeld, LeaseLost, TuningError
from core.redis.admission import Admission
from core.redis.job_store import JobStore, Lease, Versioned
from core.redis.schedule import Claimed, Moves, Schedule
from core.redis.token_bucket import prepaid
from core.runtime import deadline, logs, tracing
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from worker import fence
from worker.fence import Fence
from worker.keeper import LeaseKeeper
from worker.steps import DONE, Next, Steps, step_of
from worker.sweep import Sweeper

log = logging.getLogger(__name__)

STOP_WAIT_S = 5.0
"""The longest a visit waits for a task it stopped (its step, its keeper), and a stopping
worker for visits it cancelled: long enough for a Redis call or an upstream request that
is honouring the cancel to end."""


CLAIM_GATHER_S = 0.05
"""How long a busy worker waits, after a visit ends, for more to end before it claims
again: one claim (one Redis round trip, carrying every finished visit's reschedule) serves
several; the price is at most this much on when a due job is picked up."""


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
        metrics: Metrics | None = None,
    ):
        self._store = store
        self._schedule = schedule
        self._steps = steps
        self._settings = settings
        self._sweeper = sweeper
        self._admission = admission
        self._metrics = metrics
        self._next_sweep = 0.0
        self._moves = Moves()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Renewed every third of the shorter of the job's lease and the schedule's claim.
        lease_s, claim_s = settings.job_lease_s, settings.claim_lease_s
        self._keeper = LeaseKeeper(
            store, schedule, claim_s=claim_s, interval_s=min(lease_s, claim_s) / 3
        )

    async def run(self, stop: asyncio.Event, *, grace_s: float = 30.0) -> None:
        """Work until `stop` is set, then let visits in progress finish within `grace_s`.

        A worker that starts sweeps first, then every `sweep_interval_s`.
        """
        while not stop.is_set():
            await self._maybe_sweep()
            free = self._settings.worker_concurrency - len(self._tasks)
            await self._admit(free)
            claimed = await self._claim(max(free, 0)) if free > 0 or self._moves else []
            for job in claimed:
                task = asyncio.create_task(self.visit(job.tenant, job.job_id, job.token_at_s))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if len(claimed) < free or free <= 0:
                await self._idle(stop)
        await self._drain(grace_s)
        await asyncio.shield(self.send_moves())

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

    async def _admit(self, count: int) -> None:
        """Start up to `count` queued jobs, fairly across tenants (core.redis.admission).

        Only as many as this worker has free slots: an admitted job is due at once, and
        admitting more than the fleet can take would move the queue from the tenants'
        fair queues into the schedule, where it is first come, first served. And only when
        the latest claim saw tenants waiting: with nothing queued, no round trip is spent."""
        if self._admission is None or count <= 0 or not self._schedule.tenants_waiting:
            return
        try:
            await self._admission.admit(count)
        except TuningError as exc:
            log.warning("admission round failed: %s", exc.message)

    async def send_moves(self) -> None:
        """Send the finished visits' reschedules now, not with the next claim."""
        await self._claim(0)

    async def _claim(self, count: int) -> list[Claimed]:
        """Send the pending reschedules, and take up to `count` due jobs."""
        try:
            return await self._schedule.claim(count, self._settings.claim_lease_s, self._moves)
        except TuningError as exc:
            log.warning("cannot claim work: %s", exc.message)
            return []

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for the next look: a visit finishing (and CLAIM_GATHER_S more, for others
        to finish too), `stop`, or the idle interval."""
        waiter = asyncio.create_task(stop.wait())
        try:
            idle_s = self._settings.worker_idle_s
            done, _ = await asyncio.wait(
                [waiter, *self._tasks], timeout=idle_s, return_when=asyncio.FIRST_COMPLETED
            )
            if done and waiter not in done:
                await asyncio.wait([waiter], timeout=min(CLAIM_GATHER_S, idle_s))
        finally:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter

    async def _drain(self, grace_s: float) -> None:
        if not self._tasks:
            return
        log.info("waiting up to %.1fs for %d visits", grace_s, len(self._tasks))
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        if not pending:
            return
        for task in pending:
            task.cancel()  # Its claim and lease run out; another worker takes the job.
        # A cancel can be swallowed (worker.keeper): wait for it, but not forever (a
        # cancelled visit waits up to STOP_WAIT_S for its step, then for its keeper).
        _, stuck = await asyncio.wait(pending, timeout=2 * STOP_WAIT_S)
        if stuck:
            log.error("%d visits did not stop when cancelled; leaving them", len(stuck))

    async def visit(self, tenant: str, job_id: str, token_at_s: float | None = None) -> None:
        """Take the job's lease, advance it, reschedule it, give the lease back.

        `token_at_s`: when the upstream token its claim took for it may be used (None: none).
        """
        # Each visit is a task of its own: these label every log line about this job.
        logs.tenant.set(tenant)
        logs.job.set(JOB_NAME_PREFIX + job_id)
        with prepaid(token_at_s):
            await self._visit(tenant, job_id)

    async def _visit(self, tenant: str, job_id: str) -> None:
        lease_s, sent_at = self._settings.job_lease_s, time.monotonic()
        try:
            acquired = await self._store.acquire(tenant, job_id, lease_s)
        except LeaseHeld:
            return  # Another worker is on it and will reschedule it.
        except TuningError as exc:
            log.warning("cannot take job %s/%s: %s", tenant, job_id, exc.message)
            return
        if acquired is None:
            self._moves.add(tenant, job_id, None, poll=False)
            return
        lease, current = acquired
        with tracing.current(_visit_span(lease, current.job)):
            await self._held(lease, current, sent_at)

    async def _held(self, lease: Lease, current: Versioned, sent_at: float) -> None:
        """The visit, its lease taken."""
        tenant, job_id, lease_s = lease.tenant, lease.job_id, self._settings.job_lease_s
        if lease.deliveries > self._settings.max_unfinished_visits:
            await self._steps.dead_letter(lease, current.job)
            await self._finish(lease, DONE, finished=True)
            return
        held = Fence.for_lease(f"job {tenant}/{job_id}", sent_at, lease_s)
        ended = await self._run(lease, held, current)
        if ended is None:  # the lease was lost: the job is another worker's now
            if self._metrics is not None:
                self._metrics.lease_losses.inc()
            return
        after, finished = ended
        await self._finish(lease, after, finished=finished)

    async def _run(self, lease: Lease, held: Fence, current: Versioned) -> tuple[Next, bool] | None:
        """Advance the job under `held` while the keeper renews it, within the visit's
        deadline; when to come back and whether the visit finished, or None if the lease
        was lost (the job is another worker's now).

        The visit stops at once when the keeper loses the lease or the deadline passes:
        its fence is lost, so nothing more goes upstream whatever the step task does; the
        step is cancelled too, but correctness does not rest on that cancel (Redis refuses
        the writes of a lost lease by its epoch).
        """
        keeping = self._keeper.watch(lease, held)
        step = asyncio.create_task(self._advance(lease, held, current))
        ends: set[asyncio.Future[Any]] = {step, keeping.lost}
        try:
            await asyncio.wait(
                ends,
                timeout=self._settings.visit_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stepped, lost = step.done(), keeping.lost.done()
            if not stepped:
                held.lose()
                step.cancel()
                await self._bounded(step)
            keeper = keeping.stop()
            if keeper is not None:
                await self._bounded(keeper)
        if stepped:
            return self._outcome(lease, step)
        if lost:
            return None
        log.warning(
            "job %s: visit passed its %.0fs deadline; released for another worker",
            lease.job_id,
            self._settings.visit_timeout_s,
        )
        return Next(self._settings.retry_max_s), False

    async def _advance(self, lease: Lease, held: Fence, current: Versioned) -> Next:
        with fence.holding(held), deadline.within(self._settings.visit_timeout_s):
            return await self._steps.advance(lease, current)

    async def _bounded(self, task: asyncio.Task[Any]) -> None:
        """Wait up to STOP_WAIT_S for `task` to end; if it will not, keep it (and drain
        it at shutdown) rather than wait on a cancel that may have been swallowed."""
        await asyncio.wait({task}, timeout=STOP_WAIT_S)
        if task.done():
            _ended(task)
            return
        log.error("a task of a stopped visit did not end within %.0fs", STOP_WAIT_S)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_ended)

    async def _finish(self, lease: Lease, after: Next, *, finished: bool) -> None:
        """Reschedule the job (with the next claim) and give its lease back, unless its
        last write did. Neither is undone by a cancel of the visit: the reschedule is
        noted before anything is awaited, the release shielded (a usual poll's last write
        gave the lease back, and then no task is spent on a shield)."""
        self._moves.add(lease.tenant, lease.job_id, after.delay_s, poll=after.poll)
        if not after.released:
            await asyncio.shield(self._release(lease, finished=finished))

    async def _release(self, lease: Lease, *, finished: bool) -> None:
        try:
            await self._store.release(lease, finished=finished)
        except TuningError as exc:
            # The lease runs out by itself and the job can be taken again: nothing is lost.
            log.warning("job %s: could not give its lease back: %s", lease.job_id, exc.message)

    def _outcome(self, lease: Lease, step: asyncio.Task[Next]) -> tuple[Next, bool] | None:
        """What a step task that ended says: when to come back and whether the visit
        finished, or None if its lease was lost."""
        if step.cancelled():  # Only the visit cancels it, and then not for this answer.
            return None
        error = step.exception()
        if error is None:
            return step.result(), True
        if isinstance(error, LeaseLost):
            log.warning("job %s: lease lost to another worker; stopping", lease.job_id)
            return None
        # A bug must not kill the worker; the job comes due again, and counts.
        log.error("job %s: unexpected error", lease.job_id, exc_info=error)
        return Next(self._settings.retry_max_s), False


def _visit_span(lease: Lease, job: Job) -> Span | None:
    """The visit's span (None when tracing is off): a child of the create that made the
    job, whose traceparent the job keeps (docs/architecture.md, decision 33), so that a
    job's visits and their Redis scripts and upstream requests join its caller's trace."""
    if tracing.tracer() is None:
        return None
    parent = tracing.parent_of({tracing.TRACEPARENT: job.traceparent})
    step = step_of(job)
    attributes = {
        "tuning.job": job.name,
        "tuning.tenant": job.tenant,
        "tuning.step": step,
        "tuning.deliveries": lease.deliveries,
    }
    # No traceparent (tracing was off at the create): a trace of its own, not the loop's.
    return tracing.start_span(f"visit {step}", parent=parent or Context(), attributes=attributes)


def _ended(task: asyncio.Task[Any]) -> None:
    """How a task of a stopped visit ended: LeaseLost is expected of it; anything else
    (the keeper's or the step's) is a bug, logged."""
    error = None if task.cancelled() else task.exception()
    if error is not None and not isinstance(error, LeaseLost):
        log.error("a task of a stopped visit failed", exc_info=error)
