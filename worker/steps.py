"""One visit to a job: do what its state asks for, then say when to come back.

A visit may pass through several states: a job submitted while its caller cancelled
goes on to the cancel in the same visit. Every write goes through the job store with
the visit's lease (fencing), and through core.domain.lifecycle, so a write that crosses a
caller's cancel or delete is re-applied to the fresher record, not lost.

Just before each upstream create, cancel and delete, the visit reads the job again under
its lease (`_hold`: one round trip that proves the lease, extends it and the visit's
fence) and decides afresh if the job moved on meanwhile: a job cancelled or deleted while
its visit was paused gets no create, only the clean-up of what exists.

Upstream failures are sorted by kind: a rejection fails the job with the upstream's
own words; a transient failure comes back later with full-jitter backoff (at least as
long as the upstream asked), and after `max_step_attempts` failed attempts the job is
dead-lettered: FAILED, with the last error kept.

A Vertex AI job first takes a slot of its project (core.redis.project_slots): it tries
the tenant's targets in order (the main project, then its pools) and is placed on the
first with a free slot, for good (`Job.provider` is rewritten to that target with the
move to CREATING). A job that finds none stays QUEUED, in every target's line, with
`waiting_for` naming them, and comes back every `WAIT_FOR_SLOT_S` (or at once when a
slot is given back to it); no attempt is counted. Its slot is given back, and the
waiters it admits woken, after the write that ends the job (`_update`) or before it is
removed (`_remove`), or when a job that ended elsewhere (cancelled in line by the API) is
woken; the sweep gives back what a crash in between left held.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.rpc import code_pb2
from opentelemetry.trace import Span

from core.domain import lifecycle
from core.domain.job import DATASET_NAME_PREFIX, Example, Job, decode_examples
from core.domain.providers import VertexTarget
from core.domain.states import JobState
from core.domain.upstream import UpstreamRef, UpstreamState, UpstreamStatus
from core.errors import (
    JobError,
    JobGone,
    RateLimited,
    Reason,
    Retryable,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
)
from core.redis.job_store import JobStore, Lease, Versioned
from core.redis.project_slots import ProjectSlots
from core.redis.schedule import member, parse_member
from core.runtime import deadline, tracing
from core.runtime.clock import Clock
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.security.token_source import TokenSource
from core.upstream_http import DEFAULT_HOLD_OFF_S, urgent
from worker import fence
from worker.provider import ExampleBatches, TuningProvider, TuningRequest
from worker.providers import Providers
from worker.training_data import TrainingData

log = logging.getLogger(__name__)

MAX_HOPS = 5
WAIT_FOR_SLOT_S = 10.0
"""How often a job waiting for a slot of its Vertex AI project asks again (a slot given
back wakes the head of the line at once; this is the floor if that wake is lost)."""

Wake = Callable[[str, str], Awaitable[None]]
"""Make a job (tenant, job id) due now."""


@dataclass(frozen=True)
class Again:
    """The job changed state during the step: visit it again at once."""

    job: Job


@dataclass(frozen=True)
class Next:
    """What a visit decided: come back in `delay_s` (None: nothing more to do), for a
    status poll (`poll`: the schedule's poll lane, paced by the budget) or for work; and
    whether its last write gave the job's lease back already (`released`)."""

    delay_s: float | None
    poll: bool = False
    released: bool = False


DONE = Next(None)

Outcome = Again | Next | float | None
"""Again; a Next; or come back for work in this many seconds; or None: nothing more to do."""


class Steps:
    """The worker's behaviour for each job state."""

    def __init__(
        self,
        store: JobStore,
        providers: Providers,
        auth_for: Callable[[str], TokenSource],
        settings: Settings,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        training: TrainingData | None = None,
        slots: ProjectSlots | None = None,
        wake: Wake | None = None,
    ) -> None:
        self._slots = slots
        self._wake = wake
        self._training = training
        self._metrics = metrics
        self._store = store
        self._providers = providers
        self._auth_for = auth_for
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._polling = settings.poll_policy()

    @property
    def store(self) -> JobStore:
        return self._store

    async def advance(self, lease: Lease, current: Versioned) -> Next:
        """Advance the job (as `current` was read when its lease was taken) as far as it
        can go now; when to come back, and what for."""
        job = current.job
        read: Versioned | None = current
        try:
            for _ in range(MAX_HOPS):
                outcome = await self._attempt(lease, job, read)
                if not isinstance(outcome, Again):
                    return outcome if isinstance(outcome, Next) else Next(outcome)
                job, read = outcome.job, None
        except JobGone:
            return DONE
        return Next(0.0)

    async def _attempt(self, lease: Lease, job: Job, read: Versioned | None) -> Outcome:
        """One step; `read` is the job at its version if nothing was written since."""
        polling = _polls(job)
        try:
            with deadline.within(self._settings.step_timeout_s), tracing.current(_span_of(job)):
                return await self._step(lease, job, read)
        except UpstreamRejected as exc:
            log.warning("job %s failed upstream: %s", job.name, exc.message)
            await self._fail(lease, job, exc.job_error())
            return None
        except RateLimited as exc:  # Our own budget, not the job's fault: no attempt counted.
            self._count_retry("rate_limited")
            return Next(exc.retry_after_s, poll=polling)
        except (UpstreamError, Retryable) as exc:
            if exc.reason == Reason.UPSTREAM_RESOURCE_EXHAUSTED:
                # The project's quota, not the job: the fleet's budget is held back
                # (core.upstream_http), and the job comes back then, no attempt counted.
                self._count_retry("upstream_429")
                return Next(exc.retry_after_s or DEFAULT_HOLD_OFF_S, poll=polling)
            self._count_retry("transient")
            why = f"{exc.reason.value}: {exc.message}"
            delay_s = await self._retry_later(lease, job, why, exc.retry_after_s)
            return Next(delay_s, poll=polling and delay_s is not None)

    async def _step(self, lease: Lease, job: Job, read: Versioned | None) -> Outcome:
        """The job's next step. Everything but a poll is work a caller waits on, and
        goes ahead of polls for the fleet's upstream budget (core.upstream_http.urgent)."""
        step = step_of(job)
        if step == "poll":
            return await self._poll(lease, job, read)
        with urgent():
            if step == "delete":
                return await self._clean_up(lease, job)
            if step == "submit":
                return await self._submit(lease, job)
            if step == "cancel":
                return await self._cancel(lease, job)
        if job.state.terminal:  # Woken by a freed slot, say, after a cancel while waiting:
            await self._leave_lines(job)  # pass the slot on to the next in line.
        return None

    async def _submit(self, lease: Lease, job: Job) -> Outcome:
        creating = await self._creating(lease, job)
        if not isinstance(creating, Job):
            return creating
        job = creating
        training = await self._training_examples(job)
        if training is None:
            error = JobError.of(Reason.DATA_LOST, "the job's training data is missing")
            await self._fail(lease, job, error)
            return None
        examples, stored = training
        validation = await self._validation_examples(job)
        if validation is None:
            error = JobError.of(
                Reason.DATA_LOST,
                f"the validation dataset {job.validation_dataset} no longer exists; a job "
                "needs it until it is submitted",
            )
            await self._fail(lease, job, error)
            return None
        request = TuningRequest.from_job(job, examples, validation, stored)
        if moved := await self._hold(lease, job):
            return moved
        status = await self._provider(job).create(self._auth_for(job.tenant), request)
        job = await self._update(
            lease, job, lambda j: lifecycle.submitted(j, status, self._clock())
        )
        await self._discard_file(job)
        log.info("job %s submitted as %s", job.name, status.ref.tuned_model)
        if job.state == JobState.RUNNING:
            return Next(self._polling.first_s(), poll=True)
        return None if job.state.terminal else Again(job)

    async def _creating(self, lease: Lease, job: Job) -> Job | Again | Next:
        """The job moved to CREATING (a QUEUED one placed first); Again if it had moved
        on, Next if it waits for a slot."""
        target = None
        if job.state == JobState.QUEUED:
            placement = await self._placement(lease, job)
            if isinstance(placement, Next):
                return placement
            target = placement
        creating = await self._update(lease, job, lambda j: lifecycle.creating(_placed(j, target)))
        if target is not None:  # Placed for good: out of the other pools' lines.
            await self._leave_lines(job, keep=target.project)
        return creating if creating.state == JobState.CREATING else Again(creating)

    async def _placement(self, lease: Lease, job: Job) -> VertexTarget | Next | None:
        """The first of the job's targets with a slot it now holds (None: a job of no
        Vertex target, or no limits); or, with none free, Next: wait in every line."""
        targets = job.provider.targets()
        if self._slots is None or not targets:
            return None
        waiting: dict[str, int] = {}
        for target in targets:
            placement = await self._slots.take(target.project, member(job.tenant, job.id))
            if placement.granted:
                return target
            waiting[target.project] = placement.position
        projects = tuple(waiting)
        if job.waiting_for != projects:  # Logged and written once, not at every ask.
            log.info("job %s waits for a slot; places in line: %s", job.name, waiting)
            await self._update(lease, job, lambda j: _waiting(j, projects))
        return Next(WAIT_FOR_SLOT_S)

    async def _leave_lines(self, job: Job, *, keep: str | None = None) -> None:
        """Give back the job's slot and places in line in each of its targets' projects
        (but `keep`), and wake the waiters that lets in (idempotent)."""
        if self._slots is None:
            return
        for target in job.provider.targets():
            if target.project != keep:
                woken = await self._slots.give_back(target.project, member(job.tenant, job.id))
                await self._wake_all(woken)

    async def _wake_all(self, members: list[str]) -> None:
        if self._wake is not None:
            for raw in members:
                await self._wake(*parse_member(raw))

    async def _training_examples(
        self, job: Job
    ) -> tuple[list[Example], ExampleBatches | None] | None:
        """The job's inline examples, or its file's read as they are sent; None if gone."""
        if job.training_file is not None:
            if self._training is None:
                return None
            return [], self._training.batches(job.training_file)
        raw = await self._store.examples(job.tenant, job.id)
        return None if raw is None else (decode_examples(raw), None)

    async def _validation_examples(self, job: Job) -> list[Example] | None:
        """The job's validation examples ([] if it names no validation dataset); None if
        the dataset it names is gone."""
        if not job.validation_dataset:
            return []
        dataset_id = job.validation_dataset.removeprefix(DATASET_NAME_PREFIX)
        if self._training is None:
            return None
        return await self._training.validation_examples(job.tenant, dataset_id)

    async def _discard_file(self, job: Job) -> None:
        """The job's copy of its dataset's file is used (or will never be): let it go."""
        if self._training is not None:
            await self._training.discard(job.tenant, job.training_file)

    async def _poll(self, lease: Lease, job: Job, read: Versioned | None) -> Outcome:
        """Fetch the job's status and record it: the usual visit, kept to two round trips
        to Redis besides the claim's (the lease's taking, and one write that also gives
        the lease back), written against the version the lease was taken with."""
        try:
            auth = self._auth_for(job.tenant)
            status = await self._provider(job).status(auth, self._ref(job), job.snapshots)
        except UpstreamNotFound:
            error = JobError.of(Reason.DELETED_UPSTREAM, f"{job.tuned_model} was deleted upstream")
            await self._fail(lease, job, error)
            return None
        before, now = job, self._clock()
        job = await self._update(
            lease,
            job,
            lambda j: lifecycle.observed(j, status, now, self._settings.stall_after_s),
            read=read,
            release_if=_visit_ends,
        )
        if not _visit_ends(job):
            return Again(job)
        if job.state.terminal:
            return Next(None, released=True)
        return Next(self._polling.next_s(before, job), poll=True, released=True)

    async def _cancel(self, lease: Lease, job: Job) -> Outcome:
        """Cancel upstream, then end in whatever state the upstream's truth says."""
        auth, ref = self._auth_for(job.tenant), self._ref(job)
        if moved := await self._hold(lease, job):
            return moved
        status = await self._cancelled_status(self._provider(job), auth, ref)
        must_delete = False
        if status is not None and status.state == UpstreamState.RUNNING:
            if status.ref.operation:  # The provider's ref: it may have found the job.
                return self._settings.poll_min_s  # Asked; not stopped yet. Look again soon.
            # Without its operation the training cannot be cancelled; deleting stops it.
            status, must_delete = None, True
        now = self._clock()

        def end(j: Job) -> Job | None:
            return (
                lifecycle.cancelled(j, now)
                if status is None
                else lifecycle.observed(j, status, now)
            )

        ended = end(job)
        cancelled = ended is not None and ended.state == JobState.CANCELLED
        if cancelled and (must_delete or self._settings.delete_cancelled_models):
            if moved := await self._hold(lease, job):
                return moved
            await self._provider(job).delete(auth, ref)
        await self._update(lease, job, end)
        return None

    async def _cancelled_status(
        self, provider: TuningProvider, auth: TokenSource, ref: UpstreamRef
    ) -> UpstreamStatus | None:
        """Ask the upstream to stop; its status afterwards, or None if nothing is there."""
        try:
            await provider.cancel(auth, ref)
            return await provider.status(auth, ref)
        except UpstreamNotFound:
            return None

    async def _clean_up(self, lease: Lease, job: Job) -> Outcome:
        """A deleted job: stop and delete its upstream model, then forget the job."""
        if job.state != JobState.QUEUED:
            auth, ref = self._auth_for(job.tenant), self._ref(job)
            if moved := await self._hold(lease, job):
                return moved
            if not job.state.terminal:
                await self._cancelled_status(self._provider(job), auth, ref)
                if moved := await self._hold(lease, job):
                    return moved
            await self._provider(job).delete(auth, ref)
        await self._discard_file(job)
        await self._remove(lease, job)
        log.info("job %s deleted", job.name)
        return None

    async def _retry_later(
        self, lease: Lease, job: Job, why: str, after_s: float | None
    ) -> float | None:
        now = self._clock()
        job = await self._update(lease, job, lambda j: lifecycle.attempt_failed(j, now, why))
        retrying_s = now - (job.retrying_since or now)
        if (
            job.attempts >= self._settings.max_step_attempts
            or retrying_s >= self._settings.retry_budget_s
        ):
            error = JobError.of(
                Reason.DEAD_LETTERED,
                f"gave up after {job.attempts} failed attempts over {retrying_s:.0f}s; "
                f"last error: {why}",
            )
            await self._fail(lease, job, error)
            return None
        delay_s = max(after_s or 0.0, self._backoff_s(job.attempts))
        log.info(
            "job %s: attempt %d failed (%s); again in %.1fs", job.name, job.attempts, why, delay_s
        )
        return delay_s

    def _count_retry(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.upstream_retries.labels(reason).inc()

    def _backoff_s(self, attempt: int) -> float:
        """Full jitter: uniform between 0 and the capped exponential."""
        cap = min(self._settings.retry_max_s, self._settings.retry_base_s * 2**attempt)
        return self._rng.uniform(0, cap)

    def _ref(self, job: Job) -> UpstreamRef:
        if job.tuned_model:
            return UpstreamRef(job.tuned_model, job.operation)
        return self._provider(job).ref_for(job.tuned_model_id)

    def _provider(self, job: Job) -> TuningProvider:
        return self._providers.of(job.provider)

    async def dead_letter(self, lease: Lease, job: Job) -> None:
        """The job was handed out too often without a visit finishing: give up on it."""
        error = JobError.of(
            Reason.DEAD_LETTERED,
            f"dead-lettered after {lease.deliveries - 1} deliveries that did not finish "
            "(the worker crashed, stalled or met an unexpected error each time)",
            code=code_pb2.ABORTED,
        )
        log.error("job %s: %s", job.name, error.message)
        if self._metrics is not None:
            self._metrics.dead_letters.labels(job.tenant).inc()
        if job.deleted:
            await self._remove(lease, job)
            return
        with contextlib.suppress(JobGone):
            await self._fail(lease, job, error)

    async def _fail(self, lease: Lease, job: Job, error: JobError) -> None:
        await self._update(lease, job, lambda j: lifecycle.failed(j, error, self._clock()))

    async def _hold(self, lease: Lease, job: Job) -> Again | None:
        """Just before an upstream side effect decided on `job`: read the job again under
        the lease; Again (decide afresh) if it moved on meanwhile, None to go ahead.

        LeaseLost if another worker has the job, JobGone if it is gone. The renewal moves
        the visit's fence forward by the time it was sent, as the keeper's do.
        """
        visit_fence = fence.current(f"job {job.id}: upstream side effect")
        sent_at = time.monotonic()
        found = await self._store.hold(lease, lease.lease_s)
        if found is None:
            raise JobGone(f"job {job.id} no longer exists")
        visit_fence.extend(sent_at, lease.lease_s)
        fresh = found.job
        if (fresh.state, fresh.deleted) != (job.state, job.deleted):
            return Again(fresh)
        return None

    async def _remove(self, lease: Lease, job: Job) -> None:
        """Forget the job, its slot and places in line first."""
        await self._leave_lines(job)
        await self._store.remove(lease)

    async def _update(
        self,
        lease: Lease,
        job: Job,
        change: Callable[[Job], Job | None],
        *,
        read: Versioned | None = None,
        release_if: Callable[[Job], bool] | None = None,
    ) -> Job:
        stored = await self._store.update(
            job.tenant, job.id, change, lease=lease, read=read, release_if=release_if
        )
        if stored is None:
            raise JobGone(f"job {job.id} no longer exists")
        if stored.state.terminal or stored.deleted:
            await self._leave_lines(stored)
        return stored


def _placed(job: Job, target: VertexTarget | None) -> Job:
    """The job placed on `target` for good, no longer waiting (as it is, for None)."""
    if target is None:
        return job
    return job.replace(provider=job.provider.placed_on(target), waiting_for=())


def _waiting(job: Job, projects: tuple[str, ...]) -> Job | None:
    """A QUEUED job waiting in the lines of `projects` (None: it moved on meanwhile)."""
    if job.state != JobState.QUEUED or job.deleted:
        return None
    return job.replace(waiting_for=projects)


def step_of(job: Job) -> str:
    """The step `job`'s state asks of a visit (`Steps._step`): poll, delete (the clean-up
    upstream), submit, cancel, or none."""
    if _polls(job):
        return "poll"
    if job.deleted:
        return "delete"
    if job.state in (JobState.QUEUED, JobState.CREATING):
        return "submit"
    if job.state == JobState.CANCELLING:
        return "cancel"
    return "none"


def _span_of(job: Job) -> Span | None:
    """A span of the step `job` is at, inside a traced visit (worker.worker); None when
    tracing is off."""
    if tracing.child_tracer() is None:
        return None
    step = step_of(job)
    return tracing.start_span(f"step {step}", attributes={"tuning.step": step})


def _polls(job: Job) -> bool:
    """Whether the job's next step is a status poll."""
    return job.state == JobState.RUNNING and not job.deleted


def _visit_ends(job: Job) -> bool:
    """Whether a poll that leaves the job so ends its visit (nothing more to do now)."""
    return job.state != JobState.CANCELLING and not job.deleted
