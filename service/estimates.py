"""A RUNNING job's estimated end in the API's answers, computed as they are read.

The estimate depends on the clock (core.domain.eta: a stalled job's moves later), so, like
the retirement flag (service.retirement), it is never part of a cached answer: it is set
on each answer built, and appended to a cached one as a serialized TuningJob holding that
one field (protobuf merges concatenated messages; the cached answer never sets it).
"""

from __future__ import annotations

from core.domain.eta import estimated_end
from core.domain.job import Job
from tuning.v1 import tuning_job_pb2


def set_estimated_end(message: tuning_job_pb2.TuningJob, job: Job, now_s: float) -> None:
    """`estimated_end_time`, when the job has one (core.domain.eta says when)."""
    end_s = estimated_end(job, now_s)
    if end_s is not None:
        message.estimated_end_time.FromNanoseconds(int(end_s * 1e9))


def estimated_end_bytes(job: Job, now_s: float) -> bytes:
    """The estimate as a serialized TuningJob, to append to a serialized answer."""
    message = tuning_job_pb2.TuningJob()
    set_estimated_end(message, job, now_s)
    return message.SerializeToString()
