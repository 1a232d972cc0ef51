"""A job's events: what happened to it, read off the difference between two of its records.

Every change to a job is a save of a new record over the one read (core.redis.job_store),
so what happened is exactly what differs between the two: a state left for another, an
attempt counted, a checkpoint listed, a stall begun or ended. `between` says so, the one
place the events are worded; the save writes them in the same script as the record, so a
job's events and its state can never disagree (an event is recorded if and only if the
change it tells of was). The first event, ACCEPTED, is the record's own creation, read from
its `create_time` (service.events), so the hot create path writes nothing more.

What each change reads as:

- QUEUED to CREATING: ADMITTED, with how long the job waited in the queue;
- CREATING to RUNNING: SUBMITTED, naming the upstream's model;
- to CANCELLING: CANCEL_REQUESTED; to SUCCEEDED, FAILED (with the error) or CANCELLED;
- one more attempt counted: RETRY (WARNING), with why (the error the worker met);
- a checkpoint not listed before: CHECKPOINT;
- waiting for a Vertex AI project's quota, newly: WAITING_FOR_QUOTA;
- a stall begun (`stalled_since` set, core.domain.lifecycle): STALLED (WARNING); ended
  while the job still runs: RESUMED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import orjson

from core.domain.job import Job
from core.domain.states import JobState

DEFAULT_MAX_EVENTS = 200
"""Events kept per job, unless told otherwise (TUNING_JOB_MAX_EVENTS)."""
MAX_MESSAGE_CHARS = 500
"""An event's message is cut there (an upstream error can be long)."""


class Level(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Kind(StrEnum):
    """The names of tuning.v1.TuningJobEvent.Kind."""

    ACCEPTED = "ACCEPTED"
    ADMITTED = "ADMITTED"
    SUBMITTED = "SUBMITTED"
    RETRY = "RETRY"
    CHECKPOINT = "CHECKPOINT"
    STALLED = "STALLED"
    RESUMED = "RESUMED"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    WAITING_FOR_QUOTA = "WAITING_FOR_QUOTA"


@dataclass(frozen=True)
class Event:
    time_s: float
    level: Level
    kind: Kind
    message: str

    def to_json(self) -> str:
        return orjson.dumps(self).decode()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        data = orjson.loads(raw)
        return cls(data["time_s"], Level(data["level"]), Kind(data["kind"]), data["message"])


def accepted(job: Job) -> Event:
    """The job's first event: its creation, as its record tells it."""
    source = f"dataset {job.dataset}" if job.dataset else f"{job.example_count} inline examples"
    return Event(
        job.create_time, Level.INFO, Kind.ACCEPTED, f"accepted: {source}, {job.base_model}"
    )


def between(old: Job, new: Job, now: float) -> list[Event]:
    """What happened to the job from `old` to `new` (saved at `now`), in order."""
    found = [
        *_attempts(old, new, now),
        *_checkpoints(old, new, now),
        *_waiting(old, new, now),
        *_stall(old, new, now),
        *_state(old, new, now),
    ]
    return [_bounded(e) for e in found]


def _state(old: Job, new: Job, now: float) -> list[Event]:
    made = _STATE_EVENTS.get(new.state)
    if old.state is new.state or made is None:
        return []
    if new.state is JobState.CREATING and old.state is not JobState.QUEUED:
        return []
    return [made(new, now)]


def _admitted(job: Job, now: float) -> Event:
    waited_s = max(now - job.create_time, 0.0)
    return _info(now, Kind.ADMITTED, f"admitted after {waited_s:.1f} s in the queue")


def _submitted(job: Job, now: float) -> Event:
    model = job.tuned_model_name or job.tuned_model or "its model"
    return _info(now, Kind.SUBMITTED, f"submitted: the upstream tunes {model}")


def _failed(job: Job, now: float) -> Event:
    why = job.error.message if job.error is not None else "no reason given"
    return Event(now, Level.ERROR, Kind.FAILED, f"failed: {why}")


_STATE_EVENTS: dict[JobState, Callable[[Job, float], Event]] = {
    JobState.CREATING: _admitted,
    JobState.RUNNING: _submitted,
    JobState.CANCELLING: lambda _job, now: _info(
        now, Kind.CANCEL_REQUESTED, "cancel requested; waiting for the upstream"
    ),
    JobState.SUCCEEDED: lambda job, now: _info(
        now, Kind.SUCCEEDED, f"succeeded after {job.progress.completed_steps} steps"
    ),
    JobState.CANCELLED: lambda _job, now: _info(now, Kind.CANCELLED, "cancelled"),
    JobState.FAILED: _failed,
}
"""The event of arriving in each state (QUEUED has none: ACCEPTED is the record's own)."""


def _attempts(old: Job, new: Job, now: float) -> list[Event]:
    if new.attempts <= old.attempts:
        return []
    why = new.retry_reason or "no reason recorded"
    message = f"attempt {new.attempts} failed, to be retried: {why}"
    return [Event(now, Level.WARNING, Kind.RETRY, message)]


def _checkpoints(old: Job, new: Job, now: float) -> list[Event]:
    known = {c.checkpoint_id for c in old.checkpoints}
    return [
        _info(now, Kind.CHECKPOINT, f"checkpoint {c.checkpoint_id}: epoch {c.epoch}, step {c.step}")
        for c in new.checkpoints
        if c.checkpoint_id not in known
    ]


def _waiting(old: Job, new: Job, now: float) -> list[Event]:
    if not new.waiting_for or old.waiting_for:
        return []
    projects = ", ".join(new.waiting_for)
    return [_info(now, Kind.WAITING_FOR_QUOTA, f"waiting for a tuning slot of {projects}")]


def _stall(old: Job, new: Job, now: float) -> list[Event]:
    if new.stalled_since is not None and old.stalled_since is None:
        quiet_s = now - new.stalled_since
        message = f"no progress for {quiet_s:.0f} s (at step {new.progress.completed_steps})"
        return [Event(now, Level.WARNING, Kind.STALLED, message)]
    if old.stalled_since is not None and new.stalled_since is None and not new.state.terminal:
        return [
            _info(now, Kind.RESUMED, f"progressing again (step {new.progress.completed_steps})")
        ]
    return []


def _info(now: float, kind: Kind, message: str) -> Event:
    return Event(now, Level.INFO, kind, message)


def _bounded(event: Event) -> Event:
    if len(event.message) <= MAX_MESSAGE_CHARS:
        return event
    return Event(
        event.time_s, event.level, event.kind, event.message[: MAX_MESSAGE_CHARS - 1] + "…"
    )
