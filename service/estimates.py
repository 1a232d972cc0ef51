"""A RUNNING job's estimated end in the API's answers, computed as they are read.

The estimate depends on the clock (core.domain.eta: a stalled job's moves later), so, like
the retirement flag (service.retirement), it is never part of a cached answer: it is set
on each answer built, and appended to a cached one as a serialized TuningJob holding that
one field (protobuf merges concatenated messages; the cached answer never sets it).
A cached answer keeps its record's `EndEstimate` beside it: while the estimated end is
ahead, its bytes are the same on every read, so they are serialized once.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain.eta import EndPlan, end_plan, estimated_end
from core.domain.job import Job
from tuning.v1 import tuning_job_pb2


def set_estimated_end(message: tuning_job_pb2.TuningJob, job: Job, now_s: float) -> None:
    """`estimated_end_time`, when the job has one (core.domain.eta says when)."""
    end_s = estimated_end(job, now_s)
    if end_s is not None:
        message.estimated_end_time.FromNanoseconds(int(end_s * 1e9))


@dataclass(frozen=True, slots=True)
class EndEstimate:
    """A record's estimate, and its bytes (a serialized TuningJob) while the end is ahead."""

    plan: EndPlan
    ahead: bytes

    @classmethod
    def of(cls, job: Job) -> EndEstimate | None:
        """The estimate of `job`'s record; None if it has none (then it adds nothing)."""
        plan = end_plan(job)
        return None if plan is None else cls(plan, _serialized(plan.end_s))

    def bytes_at(self, now_s: float) -> bytes:
        """The estimate as of `now_s`, to append to a serialized answer."""
        if self.plan.end_s >= now_s:
            return self.ahead
        return _serialized(self.plan.at(now_s))


def _serialized(end_s: float) -> bytes:
    message = tuning_job_pb2.TuningJob()
    message.estimated_end_time.FromNanoseconds(int(end_s * 1e9))
    return message.SerializeToString()
