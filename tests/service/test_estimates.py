"""The estimated end appended to cached answers (service.estimates): the same bytes while
the end is ahead, and a later end, from now, once it is past."""

from __future__ import annotations

from core.domain.eta import estimated_end
from core.domain.job import Job, Progress
from core.domain.states import JobState
from service.estimates import EndEstimate
from tests.core.domain.test_eta import running
from tuning.v1 import tuning_job_pb2


def running_job() -> Job:
    return running([(step, 1000.0 + step) for step in range(1, 11)])  # 1 step/s


def end_in(serialized: bytes) -> float:
    message = tuning_job_pb2.TuningJob.FromString(serialized)
    return message.estimated_end_time.ToNanoseconds() / 1e9


def test_the_bytes_say_what_the_domain_rule_says_at_any_time() -> None:
    job = running_job()
    estimate = EndEstimate.of(job)
    assert estimate is not None
    for now in (1010.0, 1099.0, 1150.0, 2000.0):
        assert end_in(estimate.bytes_at(now)) == estimated_end(job, now)
    assert estimate.bytes_at(1010.0) is estimate.bytes_at(1099.0)  # serialized once


def test_a_job_without_progress_has_no_estimate() -> None:
    job = running_job().replace(snapshots=(), progress=Progress(total_steps=100))
    assert EndEstimate.of(job) is None
    assert EndEstimate.of(running_job().replace(state=JobState.SUCCEEDED)) is None
