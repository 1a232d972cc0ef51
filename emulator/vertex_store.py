"""In-memory Vertex tuning jobs, with the tuned model and endpoints each one leads to.

A job's record holds what was fixed at its create (the spec, the run's plan, the ids its model
and endpoints will have) and what callers changed since (a cancel, undeployed and deleted
resources). Whether the model and endpoints exist is derived from the job's state at read
time (``emulator.vertex_training``), so they appear exactly when the job succeeds under any
clock. Records keep a creation sequence number for lists and page tokens.

A job is owned by its project (by number) and the OAuth client whose token created it; the
same client sees it through the project's id or number.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from emulator.vertex_spec import TuningJobSpec
from emulator.vertex_training import JobPlan, JobState, JobView, view

RESOURCE_ID_DIGITS = 19


def resource_id() -> str:
    """A server-assigned numeric id of 19 digits, as Vertex's are."""
    low = 10 ** (RESOURCE_ID_DIGITS - 1)
    return str(low + secrets.randbelow(9 * low))


def project_number(project: str, numbers: Mapping[str, int]) -> int:
    """The number of a project named by its id or number (configured, else derived)."""
    if project.isdigit():
        return int(project)
    if project in numbers:
        return numbers[project]
    digest = hashlib.blake2b(project.encode(), digest_size=8).digest()
    return 100_000_000_000 + int.from_bytes(digest, "big") % 900_000_000_000


@dataclass(frozen=True)
class Checkpoint:
    """One exported checkpoint: after ``epoch``, at ``step``, served by ``endpoint_id``."""

    checkpoint_id: str
    epoch: int
    step: int
    endpoint_id: str


@dataclass
class TuningJobRecord:
    """One tuning job as the emulator keeps it.

    Attributes:
        job_id: the 19-digit id of ``…/tuningJobs/{id}``.
        project: the project as the create named it (id or number).
        project_number: the number in resource names.
        location: e.g. ``us-central1``.
        owner: the OAuth client id that created it.
        seq: creation sequence number.
        api_version: ``v1`` or ``v1beta1``, the version of its create.
        spec: the validated request.
        plan: the run's timeline.
        example_count: training examples kept (0 when the dataset is unusable).
        stats: ``supervisedTuningDataStats`` as rendered (empty when unusable).
        model_id: the tuned model's id.
        checkpoints: one per epoch (or only the last); the last one's endpoint is the job's.
        deployed_model_ids: endpoint id -> id of the model deployed there.
        cancel_s: when a cancel was asked for, if one was.
        undeployed: endpoints whose model was undeployed, with the time.
        deleted_endpoints: endpoints deleted, with the time.
        model_deleted: the tuned model was deleted.
    """

    job_id: str
    project: str
    project_number: int
    location: str
    owner: str
    seq: int
    api_version: str
    spec: TuningJobSpec
    plan: JobPlan
    stats: dict[str, object]
    model_id: str
    checkpoints: tuple[Checkpoint, ...]
    deployed_model_ids: dict[str, str]
    cancel_s: float | None = None
    undeployed: dict[str, float] = field(default_factory=dict)
    deleted_endpoints: set[str] = field(default_factory=set)
    model_deleted: bool = False

    @property
    def parent(self) -> str:
        """``projects/{number}/locations/{location}``."""
        return f"projects/{self.project_number}/locations/{self.location}"

    @property
    def name(self) -> str:
        """``projects/{number}/locations/{location}/tuningJobs/{id}``."""
        return f"{self.parent}/tuningJobs/{self.job_id}"

    @property
    def model_name(self) -> str:
        """The tuned model's resource name (without a version)."""
        return f"{self.parent}/models/{self.model_id}"

    @property
    def endpoint_id(self) -> str:
        """The job's endpoint: the one serving its last checkpoint."""
        return self.checkpoints[-1].endpoint_id

    def endpoint_name(self, endpoint_id: str) -> str:
        """``projects/{number}/locations/{location}/endpoints/{id}``."""
        return f"{self.parent}/endpoints/{endpoint_id}"

    def view(self, now_s: float) -> JobView:
        """The job as seen at ``now_s``."""
        return view(self.plan, now_s, self.cancel_s)

    def model_exists(self, now_s: float) -> bool:
        """Whether the tuned model has been uploaded and not deleted."""
        return self.view(now_s).model_uploaded and not self.model_deleted

    def live_endpoints(self, now_s: float) -> list[str]:
        """The job's endpoints that exist at ``now_s`` (it succeeded; not deleted)."""
        if self.view(now_s).state is not JobState.SUCCEEDED:
            return []
        ids = dict.fromkeys(checkpoint.endpoint_id for checkpoint in self.checkpoints)
        return [e for e in ids if e not in self.deleted_endpoints]

    def deployed_endpoints(self, now_s: float) -> list[str]:
        """The live endpoints that still have the model deployed."""
        return [e for e in self.live_endpoints(now_s) if e not in self.undeployed]


@dataclass
class VertexStore:
    """Every tuning job of one emulator, across projects, in creation order."""

    _jobs: dict[str, TuningJobRecord] = field(default_factory=dict)
    _by_model: dict[str, str] = field(default_factory=dict)
    _by_endpoint: dict[str, str] = field(default_factory=dict)
    _last_seq: int = 0

    def next_seq(self) -> int:
        """The sequence number of the next job."""
        self._last_seq += 1
        return self._last_seq

    def add(self, record: TuningJobRecord) -> None:
        """Keep a new job and index its model and endpoints."""
        self._jobs[record.job_id] = record
        self._by_model[record.model_id] = record.job_id
        for checkpoint in record.checkpoints:
            self._by_endpoint[checkpoint.endpoint_id] = record.job_id

    def job(self, job_id: str) -> TuningJobRecord | None:
        """The job with this id, in any project."""
        return self._jobs.get(job_id)

    def job_of_model(self, model_id: str) -> TuningJobRecord | None:
        """The job whose tuned model has this id."""
        job_id = self._by_model.get(model_id)
        return self._jobs.get(job_id) if job_id else None

    def job_of_endpoint(self, endpoint_id: str) -> TuningJobRecord | None:
        """The job one of whose endpoints has this id."""
        job_id = self._by_endpoint.get(endpoint_id)
        return self._jobs.get(job_id) if job_id else None

    def all(self) -> Iterator[TuningJobRecord]:
        """Every job, in creation order."""
        return iter(self._jobs.values())

    def fresh_id(self) -> str:
        """A 19-digit id no job, model or endpoint has."""
        taken = self._jobs.keys() | self._by_model.keys() | self._by_endpoint.keys()
        found = resource_id()
        while found in taken:
            found = resource_id()
        return found

    def __len__(self) -> int:
        return len(self._jobs)
