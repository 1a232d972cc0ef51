"""A Vertex tuning job's life, computed afresh from the injected clock on every read.

A job is JOB_STATE_PENDING for ``vertex_pending_s`` after its create, then JOB_STATE_RUNNING
(its ``startTime``) while the steps of ``emulator.training`` advance, ``epochs *
ceil(examples / batch)`` of them, and JOB_STATE_SUCCEEDED at the last step (its ``endTime``),
when the tuned model is uploaded and deployed to its endpoints. A job whose dataset is unusable
ends FAILED (code 3) when PENDING is over; a ``training`` fault rule makes it fail (code 13) or
stall at a step, or fail creating its endpoint after the model was uploaded (code 13 "Failed
to create endpoint"). A cancel makes the job CANCELLING for ``vertex_cancelling_s``, then
CANCELLED (code 1) at the step reached, unless it finished meanwhile (the cancel is best
effort, as Vertex's is). Nothing runs in the background, so a fake clock gives the same answer
every time.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from emulator.training import Outcome, Progress, TrainingPlan, progress

CODE_CANCELLED = 1
CODE_INVALID_ARGUMENT = 3
CODE_INTERNAL = 13
CANCELLED_MESSAGE = "CANCELLED"
ENDPOINT_FAILURE_MESSAGE = "Failed to create endpoint"


class JobState(enum.StrEnum):
    """``google.cloud.aiplatform.v1.JobState`` names the emulator reaches."""

    PENDING = "JOB_STATE_PENDING"
    RUNNING = "JOB_STATE_RUNNING"
    SUCCEEDED = "JOB_STATE_SUCCEEDED"
    FAILED = "JOB_STATE_FAILED"
    CANCELLING = "JOB_STATE_CANCELLING"
    CANCELLED = "JOB_STATE_CANCELLED"


# Every JobState of the proto with its number (for ``enum-encoding=int`` and filters).
JOB_STATE_NUMBER = {
    "JOB_STATE_UNSPECIFIED": 0,
    "JOB_STATE_QUEUED": 1,
    "JOB_STATE_PENDING": 2,
    "JOB_STATE_RUNNING": 3,
    "JOB_STATE_SUCCEEDED": 4,
    "JOB_STATE_FAILED": 5,
    "JOB_STATE_CANCELLING": 6,
    "JOB_STATE_CANCELLED": 7,
    "JOB_STATE_PAUSED": 8,
    "JOB_STATE_EXPIRED": 9,
    "JOB_STATE_UPDATING": 10,
    "JOB_STATE_PARTIALLY_SUCCEEDED": 11,
}
TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
# The optional sub-state (``tuningJobState``) while the job is not finished.
SUB_STATE = {
    JobState.PENDING: "TUNING_JOB_STATE_PROCESSING_DATASET",
    JobState.RUNNING: "TUNING_JOB_STATE_TUNING",
}


@dataclass(frozen=True)
class JobPlan:
    """Everything about a job's run fixed at its create.

    Attributes:
        create_s: when it was created, epoch seconds.
        run_start_s: when PENDING ends and training starts.
        training: the simulated run; ``None`` when the dataset is unusable.
        dataset_failure: why the dataset is unusable ("" when it is usable).
        failure_message: the error message should a forced stop fail the run.
        endpoint_failure: the job fails creating its endpoint once the model is uploaded.
        cancelling_s: how long a cancel takes to end the job.
    """

    create_s: float
    run_start_s: float
    training: TrainingPlan | None
    dataset_failure: str = ""
    failure_message: str = ""
    endpoint_failure: bool = False
    cancelling_s: float = 0.0


@dataclass(frozen=True)
class JobView:
    """A job as seen at one moment.

    Attributes:
        state: the JobState.
        start_s: when it first ran (``None`` if it never did).
        end_s: when it ended (``None`` while not terminal).
        update_s: its last change at or before now.
        error: ``(code, message)`` for FAILED and CANCELLED jobs.
        completed_steps: training steps done so far.
        model_uploaded: the tuned model exists (it succeeded, or failed on its endpoint).
    """

    state: JobState
    start_s: float | None
    end_s: float | None
    update_s: float
    error: tuple[int, str] | None = None
    completed_steps: int = 0
    model_uploaded: bool = False

    @property
    def sub_state(self) -> str | None:
        """``tuningJobState`` while pending or running, else ``None``."""
        return SUB_STATE.get(self.state)


def view(plan: JobPlan, now_s: float, cancel_s: float | None = None) -> JobView:
    """The job of ``plan`` at ``now_s``, given the time its cancel was asked for, if it was."""
    effective_s = None if cancel_s is None else cancel_s + plan.cancelling_s
    if plan.training is None:
        return _dataset_failure_view(plan, now_s, cancel_s, effective_s)
    run = progress(plan.training, now_s, effective_s)
    if run.done:
        return _ended(plan, run, now_s, cancel_s)
    state = _unfinished_state(plan, now_s, cancel_s)
    start_s = plan.run_start_s if now_s >= plan.run_start_s else None
    update_s = _latest(plan.create_s, start_s, _seen(cancel_s, now_s))
    return JobView(state, start_s, None, update_s, completed_steps=run.completed_steps)


def _unfinished_state(plan: JobPlan, now_s: float, cancel_s: float | None) -> JobState:
    if cancel_s is not None and now_s >= cancel_s:
        return JobState.CANCELLING
    return JobState.PENDING if now_s < plan.run_start_s else JobState.RUNNING


def _ended(plan: JobPlan, run: Progress, now_s: float, cancel_s: float | None) -> JobView:
    end_s = run.end_s if run.end_s is not None else now_s
    started = end_s > plan.run_start_s or (
        end_s == plan.run_start_s and run.outcome is not Outcome.CANCELLED
    )
    start_s = plan.run_start_s if started else None
    update_s = _latest(plan.create_s, start_s, _seen(cancel_s, now_s), end_s)
    steps = run.completed_steps
    if run.outcome is Outcome.CANCELLED:
        error = (CODE_CANCELLED, CANCELLED_MESSAGE)
        return JobView(JobState.CANCELLED, start_s, end_s, update_s, error, steps)
    if run.outcome is Outcome.FAILED:
        error = (CODE_INTERNAL, plan.failure_message)
        return JobView(JobState.FAILED, start_s, end_s, update_s, error, steps)
    if plan.endpoint_failure:
        error = (CODE_INTERNAL, ENDPOINT_FAILURE_MESSAGE)
        return JobView(JobState.FAILED, start_s, end_s, update_s, error, steps, True)
    return JobView(JobState.SUCCEEDED, start_s, end_s, update_s, None, steps, True)


def _dataset_failure_view(
    plan: JobPlan, now_s: float, cancel_s: float | None, effective_s: float | None
) -> JobView:
    """A job whose dataset is unusable: FAILED when PENDING ends, unless cancelled first."""
    cancelled = effective_s is not None and effective_s < plan.run_start_s
    end_s = effective_s if cancelled and effective_s is not None else plan.run_start_s
    if now_s < end_s:
        state = JobState.CANCELLING if cancel_s is not None and now_s >= cancel_s else None
        update_s = _latest(plan.create_s, _seen(cancel_s, now_s))
        return JobView(state or JobState.PENDING, None, None, update_s)
    update_s = _latest(plan.create_s, _seen(cancel_s, now_s), end_s)
    if cancelled:
        return JobView(
            JobState.CANCELLED, None, end_s, update_s, (CODE_CANCELLED, CANCELLED_MESSAGE)
        )
    error = (CODE_INVALID_ARGUMENT, plan.dataset_failure)
    return JobView(JobState.FAILED, None, end_s, update_s, error)


def _seen(moment_s: float | None, now_s: float) -> float | None:
    """``moment_s`` if it has happened by ``now_s``."""
    return moment_s if moment_s is not None and moment_s <= now_s else None


def _latest(*moments_s: float | None) -> float:
    return max((m for m in moments_s if m is not None and math.isfinite(m)), default=0.0)
