"""Job states, stored in Redis as their string values."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a tuning job is in its life. Mirrors `tuning.v1.TuningJob.State`."""

    QUEUED = "QUEUED"
    CREATING = "CREATING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        """True once the job can change no more."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
