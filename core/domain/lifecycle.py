"""The job state machine: every change of state, as pure functions of the record.

Each function takes the latest record and returns the changed record, or None when
there is nothing to change; `JobStore.update` applies it by compare-and-set and
re-applies it to a fresher record when another writer got there first. That is why
each one is written against whatever state the job may be in by then: a caller's
cancel and a worker's progress report may cross, and the upstream's truth wins.
"""

from __future__ import annotations

import math

from core.domain.job import Job
from core.domain.states import JobState
from core.domain.upstream import UpstreamState, UpstreamStatus
from core.errors import FailedPrecondition, JobError, Reason

ACTIVE = frozenset({JobState.QUEUED, JobState.CREATING, JobState.RUNNING})


def cancel_requested(job: Job, now: float) -> Job | None:
    """A caller asked to cancel. QUEUED ends at once; work already upstream is confirmed later."""
    if job.state == JobState.QUEUED:
        return _ended(job, JobState.CANCELLED, now, _cancelled_by_caller())
    if job.state in (JobState.CREATING, JobState.RUNNING):
        return job.replace(state=JobState.CANCELLING)
    if job.state in (JobState.CANCELLING, JobState.CANCELLED):
        return None
    raise FailedPrecondition(f"{job.name} already ended in state {job.state.value}")


def delete_requested(job: Job) -> Job | None:
    """A caller deleted the job: it disappears now; a worker cleans up upstream."""
    return None if job.deleted else job.replace(deleted=True)


def creating(job: Job) -> Job | None:
    """A worker starts submitting the job upstream."""
    return job.replace(state=JobState.CREATING) if job.state == JobState.QUEUED else None


def submitted(job: Job, status: UpstreamStatus, now: float) -> Job | None:
    """The upstream accepted the job (or already had it). A pending cancel stays pending.

    If the upstream already finished it (an adopted model), the job ends as it did.
    """
    state = JobState.RUNNING if job.state in ACTIVE else job.state
    job = job.replace(
        state=state,
        tuned_model=status.ref.tuned_model,
        operation=status.ref.operation or job.operation,
        start_time=job.start_time or now,
    )
    return observed(job, status, now)


def observed(
    job: Job, status: UpstreamStatus, now: float, stall_after_s: float = math.inf
) -> Job | None:
    """Record a status fetched from upstream; a finished upstream job ends ours the same way.

    A job whose progress has not moved for `stall_after_s` is marked stalled from the
    moment it last moved (`stalled_since`), until it moves again or ends."""
    if job.state.terminal:
        return None
    moved = status.progress != job.progress or len(status.snapshots) != len(job.snapshots)
    progress_time = now if moved or job.progress_time is None else job.progress_time
    stalled = not moved and now - progress_time >= stall_after_s
    outputs = status.outputs
    job = job.replace(
        progress=status.progress,
        snapshots=status.snapshots or job.snapshots,
        tuned_model_name=outputs.model or job.tuned_model_name,
        tuned_model_endpoint=outputs.endpoint or job.tuned_model_endpoint,
        checkpoints=outputs.checkpoints or job.checkpoints,
        data_stats=outputs.data_stats or job.data_stats,
        status_fetch_time=now,
        start_time=status.start_time or job.start_time,
        polls=job.polls + 1,
        attempts=0,
        retrying_since=None,
        retry_reason="",
        progress_time=progress_time,
        stalled_since=progress_time if stalled else None,
    )
    if job.state == JobState.CREATING:
        job = job.replace(state=JobState.RUNNING)
    if status.state == UpstreamState.RUNNING:
        return job
    if status.state == UpstreamState.SUCCEEDED:
        return _ended(job, JobState.SUCCEEDED, status.end_time or now, None)
    if status.state == UpstreamState.CANCELLED and job.state == JobState.CANCELLING:
        return _ended(job, JobState.CANCELLED, status.end_time or now, _cancelled_by_caller())
    return _ended(job, JobState.FAILED, status.end_time or now, status.error or _unknown_failure())


def cancelled(job: Job, now: float) -> Job | None:
    """The upstream confirmed a cancel (or there was nothing upstream to cancel)."""
    if job.state.terminal:
        return None
    return _ended(job, JobState.CANCELLED, now, _cancelled_by_caller())


def failed(job: Job, error: JobError, now: float) -> Job | None:
    """The job cannot go on."""
    if job.state.terminal:
        return None
    return _ended(job, JobState.FAILED, now, error)


def attempt_failed(job: Job, now: float, why: str = "") -> Job:
    """A step failed in a way worth retrying (`why`); counts toward dead-lettering."""
    return job.replace(
        attempts=job.attempts + 1, retrying_since=job.retrying_since or now, retry_reason=why
    )


def _ended(job: Job, state: JobState, now: float, error: JobError | None) -> Job:
    return job.replace(state=state, end_time=now, error=error, stalled_since=None)


def _cancelled_by_caller() -> JobError:
    return JobError.of(Reason.CANCELLED, "cancelled by the caller")


def _unknown_failure() -> JobError:
    return JobError.of(
        Reason.UPSTREAM_TUNING_FAILED, "the upstream ended the job without saying why"
    )
