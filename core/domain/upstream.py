"""What an upstream tuning service says about a job, in provider-neutral terms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.domain.job import Checkpoint, DataStats, Progress
from core.domain.snapshots import Snapshot
from core.errors import JobError


class UpstreamState(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class UpstreamRef:
    """Where the job lives upstream: the tuned model and its long-running operation.

    An upstream that names a job itself only once it is created cannot say where a job
    lives before it knows of it: such a ref has only `model_id`, and the provider finds
    the job by it.
    """

    tuned_model: str
    operation: str = ""
    """What a cancel stops; empty when the training cannot be cancelled (any more)."""
    model_id: str = ""
    """The id the job was created under (`TuningRequest.model_id`), when the upstream needs it."""


@dataclass(frozen=True)
class TunedOutputs:
    """What an upstream reports it made of a job, where it reports it (Vertex AI does):
    the tuned model's resource name, the endpoint serving it, its checkpoints, and what
    it counted in the training data. Empty parts: not (yet) known."""

    model: str = ""
    endpoint: str = ""
    checkpoints: tuple[Checkpoint, ...] = ()
    data_stats: DataStats | None = None


@dataclass(frozen=True)
class UpstreamStatus:
    """One observation of a job upstream."""

    ref: UpstreamRef
    state: UpstreamState
    progress: Progress
    snapshots: Sequence[Snapshot] = ()
    error: JobError | None = None
    start_time: float | None = None
    end_time: float | None = None
    outputs: TunedOutputs = TunedOutputs()
