"""A job's or an alias's base-model retirement in the API's answers, computed at read time.

Whether a base model is retiring depends on the clock (core.domain.catalogue), so it is
never part of what is cached: GetTuningJob's near cache holds a job's serialized answer
without these fields, and `retirement_bytes` is appended to it on every read. Protobuf
merges concatenated messages (a later scalar wins, a message field merges), and the
cached answer never sets these two fields, so the result is the answer with them set. A
base model without a known date adds nothing.
"""

from __future__ import annotations

import functools

from core.domain.catalogue import Catalogue, Retirement
from core.runtime.metrics import Metrics
from tuning.v1 import alias_service_pb2, tuning_job_pb2


def set_retirement(
    message: tuning_job_pb2.TuningJob | alias_service_pb2.Alias, retirement: Retirement | None
) -> None:
    """Fill `base_model_retire_time` and `base_model_retiring` (both messages name them
    alike); leave them unset when no date is known."""
    if retirement is None:
        return
    message.base_model_retire_time.FromNanoseconds(int(retirement.retire_time_s * 1e9))
    message.base_model_retiring = retirement.retiring


@functools.lru_cache(maxsize=1024)
def retirement_bytes(retirement: Retirement | None) -> bytes:
    """The two fields as a serialized TuningJob, to append to a serialized answer.

    Cached: there are two values per base model of the catalogue (a bounded setting)."""
    if retirement is None:
        return b""
    message = tuning_job_pb2.TuningJob()
    set_retirement(message, retirement)
    return message.SerializeToString()


def export_retire_times(metrics: Metrics, catalogue: Catalogue) -> None:
    """The catalogue's dates as a gauge per base model, set once: they are configuration.
    How many jobs each concerns is not counted (that would need a scan of every job):
    `ListTuningJobs` with `base_model_retiring = true` finds a tenant's."""
    for base_model, retire_time_s in catalogue.retire_times_s.items():
        metrics.base_model_retire_time.labels(base_model).set(retire_time_s)
