"""The job state machine (core.domain.lifecycle): each edge by example, then any sequence.

The edges each function may take, read from lifecycle.py (staying in the same state is always
allowed; `delete_requested` and `attempt_failed` never change the state):

    creating          QUEUED -> CREATING
    cancel_requested  QUEUED -> CANCELLED; CREATING, RUNNING -> CANCELLING
    submitted         QUEUED, CREATING -> RUNNING, and then whatever `observed` does
    observed          CREATING -> RUNNING; QUEUED, CREATING, RUNNING, CANCELLING -> SUCCEEDED,
                      FAILED; CANCELLING -> CANCELLED
    cancelled         QUEUED, CREATING, RUNNING, CANCELLING -> CANCELLED
    failed            QUEUED, CREATING, RUNNING, CANCELLING -> FAILED

Nothing leaves SUCCEEDED, FAILED or CANCELLED, and nothing goes back to QUEUED or CREATING.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from google.rpc import code_pb2
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from core.domain import lifecycle
from core.domain.job import Job, Progress
from core.domain.snapshots import Snapshot
from core.domain.states import JobState
from core.domain.upstream import UpstreamRef, UpstreamState, UpstreamStatus
from core.errors import FailedPrecondition, JobError
from tests.clocks import START_S

S = JobState
U = UpstreamState
Edge = tuple[JobState, JobState]

UNFINISHED = (S.QUEUED, S.CREATING, S.RUNNING, S.CANCELLING)
TERMINAL = (S.SUCCEEDED, S.FAILED, S.CANCELLED)
ENDED_BY_UPSTREAM = {(s, end) for s in UNFINISHED for end in (S.SUCCEEDED, S.FAILED)} | {
    (S.CANCELLING, S.CANCELLED)
}

ENDING = frozenset({"state", "end_time", "error", "stalled_since"})
OBSERVING = ENDING | {
    "progress",
    "snapshots",
    "status_fetch_time",
    "start_time",
    "polls",
    "attempts",
    "retrying_since",
    "retry_reason",
    "progress_time",
}
RETRYING = frozenset({"attempts", "retrying_since", "retry_reason"})
# Cleaning up a deleted job upstream still counts failed attempts after the job ended.
CHANGEABLE_ONCE_ENDED = frozenset({"deleted"}) | RETRYING
CALLER_FIELDS = ("id", "tenant", "base_model", "display_name", "labels", "create_time")

REF = UpstreamRef("tunedModels/tj-j1", "tunedModels/tj-j1/operations/1")
TOTAL_STEPS = 100
UPSTREAM_ERROR = JobError(code_pb2.INTERNAL, "upstream: out of memory", "UPSTREAM_TUNING_FAILED")
WORKER_ERROR = JobError(code_pb2.DATA_LOSS, "the job's training data is missing", "DATA_LOST")
# What a caller sees on a job it cancelled, however the job came to end CANCELLED.
CALLER_CANCEL = JobError(code_pb2.CANCELLED, "cancelled by the caller", "CANCELLED")


@dataclass(frozen=True)
class Spec:
    """What one transition may do: its edges, the fields it may touch, and when it is a no-op."""

    edges: frozenset[Edge]
    fields: frozenset[str]
    no_change: Callable[[Job], bool]


SPECS: dict[str, Spec] = {
    "creating": Spec(
        frozenset({(S.QUEUED, S.CREATING)}), frozenset({"state"}), lambda j: j.state != S.QUEUED
    ),
    "cancel_requested": Spec(
        frozenset({(S.QUEUED, S.CANCELLED), (S.CREATING, S.CANCELLING), (S.RUNNING, S.CANCELLING)}),
        ENDING,
        lambda j: j.state in (S.CANCELLING, S.CANCELLED),
    ),
    "delete_requested": Spec(frozenset(), frozenset({"deleted"}), lambda j: j.deleted),
    "submitted": Spec(
        frozenset({(S.QUEUED, S.RUNNING), (S.CREATING, S.RUNNING), *ENDED_BY_UPSTREAM}),
        OBSERVING | {"tuned_model", "operation"},
        lambda j: j.state.terminal,
    ),
    "observed": Spec(
        frozenset({(S.CREATING, S.RUNNING), *ENDED_BY_UPSTREAM}),
        OBSERVING,
        lambda j: j.state.terminal,
    ),
    "cancelled": Spec(
        frozenset((s, S.CANCELLED) for s in UNFINISHED), ENDING, lambda j: j.state.terminal
    ),
    "failed": Spec(
        frozenset((s, S.FAILED) for s in UNFINISHED), ENDING, lambda j: j.state.terminal
    ),
    "attempt_failed": Spec(frozenset(), RETRYING, lambda _: False),
}


def a_job(state: JobState = S.QUEUED) -> Job:
    """A job as a caller created it, with what a worker would have recorded by `state`."""
    job = Job(
        id="j1",
        tenant="team-a",
        base_model="models/gemini-1.5-flash-001-tuning",
        state=state,
        display_name="my tuning",
        labels={"team": "a"},
        example_count=20,
        create_time=START_S,
        update_time=START_S,
    )
    if state not in (S.QUEUED, S.CREATING):
        job = job.replace(
            tuned_model=REF.tuned_model,
            operation=REF.operation,
            start_time=START_S + 10,
            status_fetch_time=START_S + 10,
            polls=1,
            progress=Progress(5, TOTAL_STEPS, 100 * 5 / TOTAL_STEPS),
            snapshots=(Snapshot(5, 0, 0.9),),
        )
    if state.terminal:
        error = {S.FAILED: UPSTREAM_ERROR, S.CANCELLED: CALLER_CANCEL}.get(state)
        job = job.replace(end_time=START_S + 20, error=error)
    return job


PROGRESS = Progress(40, 100, 40.0)
SNAPSHOTS = (Snapshot(5, 0, 0.9), Snapshot(40, 1, 0.4))


def a_status(
    state: UpstreamState = U.RUNNING,
    *,
    ref: UpstreamRef = REF,
    progress: Progress = PROGRESS,
    snapshots: tuple[Snapshot, ...] = SNAPSHOTS,
    error: JobError | None = None,
    start_time: float | None = None,
    end_time: float | None = None,
) -> UpstreamStatus:
    return UpstreamStatus(ref, state, progress, snapshots, error, start_time, end_time)


def changed_fields(before: Job, after: Job) -> set[str]:
    return {
        f.name for f in dataclasses.fields(Job) if getattr(before, f.name) != getattr(after, f.name)
    }


NOW = START_S + 100


# -- QUEUED -------------------------------------------------------------------------------------


def test_a_worker_picking_up_a_queued_job_marks_it_creating() -> None:
    job = a_job()
    assert lifecycle.creating(job) == job.replace(state=S.CREATING)


@pytest.mark.parametrize("state", [s for s in JobState if s != S.QUEUED])
def test_creating_changes_nothing_once_past_queued(state: JobState) -> None:
    assert lifecycle.creating(a_job(state)) is None


def test_a_cancel_of_a_queued_job_ends_it_at_once() -> None:
    job = a_job()
    ended = lifecycle.cancel_requested(job, NOW)
    assert ended == job.replace(state=S.CANCELLED, end_time=NOW, error=CALLER_CANCEL)


# -- CREATING -> RUNNING ------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.QUEUED, S.CREATING])
def test_submitted_runs_the_job_and_records_where_it_lives_upstream(state: JobState) -> None:
    job = a_job(state).replace(attempts=2, retrying_since=NOW - 30)
    status = a_status()
    running = lifecycle.submitted(job, status, NOW)
    assert running == job.replace(
        state=S.RUNNING,
        tuned_model=REF.tuned_model,
        operation=REF.operation,
        start_time=NOW,
        progress=status.progress,
        snapshots=status.snapshots,
        status_fetch_time=NOW,
        polls=1,
        attempts=0,
        retrying_since=None,
        progress_time=NOW,
    )


def test_submitted_takes_the_upstream_start_time_and_keeps_a_known_operation() -> None:
    job = a_job(S.CREATING).replace(operation=REF.operation)
    status = a_status(ref=UpstreamRef(REF.tuned_model), start_time=NOW - 50)
    running = lifecycle.submitted(job, status, NOW)
    assert running is not None
    assert (running.operation, running.start_time) == (REF.operation, NOW - 50)


@pytest.mark.parametrize(
    ("upstream", "end", "error"),
    [
        (U.SUCCEEDED, S.SUCCEEDED, None),
        (U.FAILED, S.FAILED, UPSTREAM_ERROR),
        (U.CANCELLED, S.FAILED, UPSTREAM_ERROR),
    ],
)
def test_submitted_adopting_a_model_that_already_ended_ends_the_job_the_same_way(
    upstream: UpstreamState, end: JobState, error: JobError | None
) -> None:
    status = a_status(upstream, error=error, start_time=NOW - 90, end_time=NOW - 60)
    ended = lifecycle.submitted(a_job(S.CREATING), status, NOW)
    assert ended is not None
    assert (ended.state, ended.error, ended.end_time) == (end, error, NOW - 60)
    assert (ended.tuned_model, ended.start_time, ended.polls) == (REF.tuned_model, NOW - 90, 1)


def test_submitted_keeps_a_pending_cancel_pending() -> None:
    job = a_job(S.CREATING).replace(state=S.CANCELLING)
    pending = lifecycle.submitted(job, a_status(), NOW)
    assert pending is not None
    assert (pending.state, pending.tuned_model, pending.end_time) == (
        S.CANCELLING,
        REF.tuned_model,
        None,
    )


def test_submitted_of_a_cancelling_job_the_upstream_already_cancelled_ends_it_cancelled() -> None:
    job = a_job(S.CREATING).replace(state=S.CANCELLING)
    ended = lifecycle.submitted(job, a_status(U.CANCELLED), NOW)
    assert ended is not None
    assert (ended.state, ended.error, ended.end_time) == (S.CANCELLED, CALLER_CANCEL, NOW)


def test_observed_moves_a_creating_job_to_running() -> None:
    running = lifecycle.observed(a_job(S.CREATING), a_status(), NOW)
    assert running is not None
    assert running.state == S.RUNNING


# -- RUNNING ------------------------------------------------------------------------------------


def test_observed_records_progress_snapshots_and_fetch_time_and_resets_attempts() -> None:
    job = a_job(S.RUNNING).replace(attempts=3, retrying_since=NOW - 30)
    status = a_status()
    seen = lifecycle.observed(job, status, NOW)
    assert seen == job.replace(
        progress=status.progress,
        snapshots=status.snapshots,
        status_fetch_time=NOW,
        polls=2,
        attempts=0,
        retrying_since=None,
        progress_time=NOW,
    )


def test_observed_keeps_the_snapshots_when_the_upstream_sends_none() -> None:
    job = a_job(S.RUNNING)
    seen = lifecycle.observed(job, a_status(snapshots=()), NOW)
    assert seen is not None
    assert seen.snapshots == job.snapshots


@pytest.mark.parametrize(("upstream_end", "end"), [(NOW - 5, NOW - 5), (None, NOW)])
def test_a_running_job_succeeds_when_the_upstream_does(
    upstream_end: float | None, end: float
) -> None:
    status = a_status(U.SUCCEEDED, progress=Progress(100, 100, 100.0), end_time=upstream_end)
    done = lifecycle.observed(a_job(S.RUNNING), status, NOW)
    assert done is not None
    assert (done.state, done.error, done.end_time) == (S.SUCCEEDED, None, end)
    assert done.progress == Progress(100, 100, 100.0)


def test_a_running_job_fails_with_the_upstream_error() -> None:
    done = lifecycle.observed(a_job(S.RUNNING), a_status(U.FAILED, error=UPSTREAM_ERROR), NOW)
    assert done is not None
    assert (done.state, done.error, done.end_time) == (S.FAILED, UPSTREAM_ERROR, NOW)


def test_a_failure_the_upstream_does_not_explain_is_unknown() -> None:
    done = lifecycle.observed(a_job(S.RUNNING), a_status(U.FAILED), NOW)
    assert done is not None
    assert done.state == S.FAILED
    assert done.error is not None
    assert done.error.code == code_pb2.UNKNOWN


def test_an_upstream_cancel_nobody_asked_for_fails_the_job() -> None:
    done = lifecycle.observed(a_job(S.RUNNING), a_status(U.CANCELLED, error=UPSTREAM_ERROR), NOW)
    assert done is not None
    assert (done.state, done.error) == (S.FAILED, UPSTREAM_ERROR)


@pytest.mark.parametrize("state", [S.CREATING, S.RUNNING])
def test_a_cancel_of_work_already_upstream_waits_for_the_upstream(state: JobState) -> None:
    job = a_job(state)
    assert lifecycle.cancel_requested(job, NOW) == job.replace(state=S.CANCELLING)


# -- CANCELLING ---------------------------------------------------------------------------------


def test_a_cancelling_job_is_cancelled_when_the_upstream_confirms() -> None:
    job = a_job(S.CANCELLING)
    status = a_status(U.CANCELLED, end_time=NOW - 1)
    done = lifecycle.observed(job, status, NOW)
    assert done is not None
    assert (done.state, done.error, done.end_time) == (S.CANCELLED, CALLER_CANCEL, NOW - 1)


def test_a_cancelling_job_waits_while_the_upstream_still_runs() -> None:
    seen = lifecycle.observed(a_job(S.CANCELLING), a_status(), NOW)
    assert seen is not None
    assert (seen.state, seen.end_time, seen.polls) == (S.CANCELLING, None, 2)


@pytest.mark.parametrize(
    ("upstream", "end", "error"),
    [(U.SUCCEEDED, S.SUCCEEDED, None), (U.FAILED, S.FAILED, UPSTREAM_ERROR)],
)
def test_a_cancelling_job_the_upstream_finished_first_ends_as_the_upstream_says(
    upstream: UpstreamState, end: JobState, error: JobError | None
) -> None:
    done = lifecycle.observed(a_job(S.CANCELLING), a_status(upstream, error=error), NOW)
    assert done is not None
    assert (done.state, done.error, done.end_time) == (end, error, NOW)


@pytest.mark.parametrize("state", UNFINISHED)
def test_cancelled_ends_any_unfinished_job(state: JobState) -> None:
    job = a_job(state)
    ended = lifecycle.cancelled(job, NOW)
    assert ended == job.replace(state=S.CANCELLED, end_time=NOW, error=CALLER_CANCEL)


@pytest.mark.parametrize("state", [S.CANCELLING, S.CANCELLED])
def test_a_second_cancel_changes_nothing(state: JobState) -> None:
    assert lifecycle.cancel_requested(a_job(state), NOW) is None


@pytest.mark.parametrize("state", [S.SUCCEEDED, S.FAILED])
def test_a_cancel_of_a_finished_job_is_refused(state: JobState) -> None:
    with pytest.raises(FailedPrecondition, match=f"tuningJobs/j1 already ended in state {state}"):
        lifecycle.cancel_requested(a_job(state), NOW)


# -- FAILED -------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", UNFINISHED)
def test_failed_ends_any_unfinished_job_with_the_error(state: JobState) -> None:
    job = a_job(state)
    ended = lifecycle.failed(job, WORKER_ERROR, NOW)
    assert ended == job.replace(state=S.FAILED, end_time=NOW, error=WORKER_ERROR)


# -- finished jobs ------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", list(UpstreamState))
@pytest.mark.parametrize("state", TERMINAL)
def test_a_finished_job_ignores_every_later_report(
    state: JobState, upstream: UpstreamState
) -> None:
    job, status = a_job(state), a_status(upstream, error=UPSTREAM_ERROR)
    assert lifecycle.observed(job, status, NOW) is None
    assert lifecycle.submitted(job, status, NOW) is None
    assert lifecycle.cancelled(job, NOW) is None
    assert lifecycle.failed(job, WORKER_ERROR, NOW) is None


# -- delete -------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(JobState))
def test_a_delete_marks_the_job_deleted_in_any_state(state: JobState) -> None:
    job = a_job(state)
    deleted = lifecycle.delete_requested(job)
    assert deleted == job.replace(deleted=True)
    assert lifecycle.delete_requested(deleted) is None


# -- attempts -----------------------------------------------------------------------------------


def test_failed_attempts_count_and_keep_when_retrying_began() -> None:
    first = lifecycle.attempt_failed(a_job(S.RUNNING), NOW)
    second = lifecycle.attempt_failed(first, NOW + 30)
    assert (first.attempts, first.retrying_since) == (1, NOW)
    assert (second.attempts, second.retrying_since) == (2, NOW)
    assert second.state == S.RUNNING


def test_a_report_from_the_upstream_after_failed_attempts_starts_the_count_again() -> None:
    job = lifecycle.attempt_failed(lifecycle.attempt_failed(a_job(S.RUNNING), NOW), NOW + 5)
    seen = lifecycle.observed(job, a_status(), NOW + 10)
    assert seen is not None
    assert (seen.attempts, seen.retrying_since) == (0, None)
    again = lifecycle.attempt_failed(seen, NOW + 20)
    assert (again.attempts, again.retrying_since) == (1, NOW + 20)


def test_failed_cleanup_attempts_of_a_deleted_finished_job_keep_how_it_ended() -> None:
    job = a_job(S.SUCCEEDED).replace(deleted=True)
    retried = lifecycle.attempt_failed(job, NOW)
    assert retried == job.replace(attempts=1, retrying_since=NOW)


# -- any sequence -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What the upstream says next; it only moves forward, but may leave things out."""

    state: UpstreamState
    more_steps: int
    new_snapshots: int
    sends_snapshots: bool
    sends_times: bool
    sends_operation: bool
    error: JobError | None


errors = st.builds(
    JobError,
    code=st.sampled_from([code_pb2.INTERNAL, code_pb2.CANCELLED, code_pb2.INVALID_ARGUMENT]),
    message=st.text(max_size=8),
    reason=st.sampled_from(["", "UPSTREAM_TUNING_FAILED", "DEAD_LETTERED"]),
)
reports = st.builds(
    Report,
    # Mostly RUNNING, so that sequences go on for a while before the upstream ends the job.
    state=st.sampled_from([U.RUNNING, U.RUNNING, U.RUNNING, U.SUCCEEDED, U.FAILED, U.CANCELLED]),
    more_steps=st.integers(0, 40),
    new_snapshots=st.integers(0, 2),
    sends_snapshots=st.booleans(),
    sends_times=st.booleans(),
    sends_operation=st.booleans(),
    error=st.none() | errors,
)


class LifecycleMachine(RuleBasedStateMachine):
    """One job record, driven by callers, a worker and an upstream in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.now = NOW
        self._start(a_job())

    def _start(self, job: Job) -> None:
        self.job = self.first = job
        self.ended = job if job.state.terminal else None
        self.upstream_steps = job.progress.completed_steps
        self.upstream_snapshots = job.snapshots
        self.upstream_start = job.start_time

    @initialize(state=st.sampled_from(JobState), deleted=st.sampled_from([False, False, True]))
    def a_job_as_stored(self, state: JobState, deleted: bool) -> None:
        self._start(a_job(state).replace(deleted=deleted))

    @precondition(lambda self: self.job.state.terminal)
    @rule(state=st.sampled_from(UNFINISHED))
    def another_job(self, state: JobState) -> None:
        self._start(a_job(state))

    def _status(self, report: Report) -> UpstreamStatus:
        self.upstream_steps = min(TOTAL_STEPS, self.upstream_steps + report.more_steps)
        self.upstream_start = self.upstream_start or self.now
        new = Snapshot(
            self.upstream_steps, self.upstream_steps // 50, 1 / (self.upstream_steps + 1)
        )
        self.upstream_snapshots = (*self.upstream_snapshots, *[new] * report.new_snapshots)
        ended = report.state != U.RUNNING
        return UpstreamStatus(
            ref=REF if report.sends_operation else UpstreamRef(REF.tuned_model),
            state=report.state,
            progress=Progress(
                self.upstream_steps, TOTAL_STEPS, 100 * self.upstream_steps / TOTAL_STEPS
            ),
            snapshots=self.upstream_snapshots if report.sends_snapshots else (),
            error=report.error,
            start_time=self.upstream_start if report.sends_times else None,
            end_time=self.now if report.sends_times and ended else None,
        )

    def _apply(self, name: str, change: Callable[[Job], Job | None]) -> Job | None:
        """Apply one transition and check what must hold of any single step."""
        before, spec = self.job, SPECS[name]
        pristine = copy.deepcopy(before)
        after = change(before)
        assert change(before) == after, f"{name} gave two answers to one input"
        assert before == pristine, f"{name} changed its input"
        assert (after is None) == spec.no_change(before), f"{name} from {before.state}"
        if after is None:
            return None
        assert after != before, f"{name} returned an unchanged record instead of None"
        edge = (before.state, after.state)
        assert edge[0] == edge[1] or edge in spec.edges, f"{name} took {edge}"
        touched = changed_fields(before, after)
        assert touched <= spec.fields, f"{name} touched {touched - spec.fields}"
        assert after.deleted or not before.deleted, f"{name} undeleted the job"
        assert after.progress.completed_steps >= before.progress.completed_steps
        assert after.progress.completed_percent >= before.progress.completed_percent
        assert after.snapshots[: len(before.snapshots)] == before.snapshots
        assert after.start_time is not None or before.start_time is None
        assert after.operation or not before.operation
        self.job = after
        if self.ended is None and after.state.terminal:
            self.ended = after
        return after

    @rule(seconds=st.floats(min_value=0.0, max_value=3600.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def worker_starts_creating(self) -> None:
        self._apply("creating", lifecycle.creating)

    @rule(report=reports)
    def worker_submits(self, report: Report) -> None:
        status, now = self._status(report), self.now
        before = self.job
        after = self._apply("submitted", lambda j: lifecycle.submitted(j, status, now))
        if after is not None:
            self._check_recorded(before, after, status)
            assert after.tuned_model == status.ref.tuned_model

    @rule(report=reports)
    def worker_observes(self, report: Report) -> None:
        status, now = self._status(report), self.now
        before = self.job
        after = self._apply("observed", lambda j: lifecycle.observed(j, status, now))
        if after is not None:
            self._check_recorded(before, after, status)

    def _check_recorded(self, before: Job, after: Job, status: UpstreamStatus) -> None:
        """The upstream's truth is what the job now shows."""
        assert after.progress == status.progress
        assert after.snapshots == (status.snapshots or before.snapshots)
        assert (after.status_fetch_time, after.polls) == (self.now, before.polls + 1)
        assert (after.attempts, after.retrying_since) == (0, None)
        if status.state == U.SUCCEEDED:
            assert (after.state, after.error) == (S.SUCCEEDED, None)
        elif status.state == U.FAILED:
            assert after.state == S.FAILED
        elif status.state == U.CANCELLED:
            caller_asked = before.state == S.CANCELLING
            assert after.state == (S.CANCELLED if caller_asked else S.FAILED)
        if after.state == S.FAILED and status.error is not None:
            assert after.error == status.error
        elif after.state == S.FAILED:
            assert after.error is not None
            assert after.error.code == code_pb2.UNKNOWN
        if after.state.terminal:
            assert after.end_time == (status.end_time or self.now)

    @rule()
    def caller_cancels(self) -> None:
        now = self.now
        if self.job.state in (S.SUCCEEDED, S.FAILED):
            with pytest.raises(FailedPrecondition):
                lifecycle.cancel_requested(self.job, now)
            return
        self._apply("cancel_requested", lambda j: lifecycle.cancel_requested(j, now))

    @rule()
    def caller_deletes(self) -> None:
        self._apply("delete_requested", lifecycle.delete_requested)

    @rule()
    def worker_confirms_cancel(self) -> None:
        now = self.now
        if self._apply("cancelled", lambda j: lifecycle.cancelled(j, now)) is not None:
            assert (self.job.error, self.job.end_time) == (CALLER_CANCEL, now)

    @rule(error=errors)
    def worker_fails_the_job(self, error: JobError) -> None:
        now = self.now
        if self._apply("failed", lambda j: lifecycle.failed(j, error, now)) is not None:
            assert (self.job.error, self.job.end_time) == (error, now)

    @rule()
    def attempt_fails(self) -> None:
        before, now = self.job, self.now
        after = self._apply("attempt_failed", lambda j: lifecycle.attempt_failed(j, now))
        assert after is not None
        assert after.attempts == before.attempts + 1
        assert after.retrying_since == (before.retrying_since or now)

    @invariant()
    def a_finished_job_stays_as_it_ended(self) -> None:
        if self.ended is not None:
            assert changed_fields(self.ended, self.job) <= CHANGEABLE_ONCE_ENDED

    @invariant()
    def the_record_is_consistent(self) -> None:
        job = self.job
        assert (job.end_time is not None) == job.state.terminal
        assert (job.error is not None) == (job.state in (S.FAILED, S.CANCELLED))
        if job.state == S.CANCELLED:
            assert job.error == CALLER_CANCEL
        assert (job.attempts == 0) == (job.retrying_since is None)
        times = (job.start_time, job.end_time, job.status_fetch_time, job.retrying_since)
        assert all(t is None or START_S <= t <= self.now for t in times)
        assert [getattr(job, f) for f in CALLER_FIELDS] == [
            getattr(self.first, f) for f in CALLER_FIELDS
        ]


def test_any_sequence_of_transitions_keeps_the_invariants() -> None:
    run_state_machine_as_test(
        LifecycleMachine,
        settings=settings(max_examples=200, stateful_step_count=20, deadline=None, database=None),
    )
