"""The job record: what is stored in Redis for each tuning job.

The record is a JSON document (`Job.to_json`) in the job's hash, next to the control
fields that Lua scripts compare (state, version, lease epoch). Times are seconds since
the epoch. Training examples are stored apart (`Keys.job_data`) and never echoed. A record
written before a field existed still loads: a missing key takes the field's default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from core.domain.providers import ProviderChoice, ProviderKind, VertexTarget
from core.domain.snapshots import NO_SNAPSHOTS, Snapshot, Snapshots
from core.domain.states import JobState
from core.errors import JobError

JOB_NAME_PREFIX = "tuningJobs/"
DATASET_NAME_PREFIX = "datasets/"
JOB_ID_PREFIX = "j"
TUNED_MODEL_ID_PREFIX = "tj-"
"""What `Job.tuned_model_id` puts before the job's id: the mark of a model the platform made."""
RANDOM_ID_CHARS = 19
"""The characters after an id's one-letter prefix: lowercase base32 ([a-z2-7])."""


@dataclass(frozen=True)
class Hyperparameters:
    """Zero or None means "the upstream's default"."""

    epoch_count: int = 0
    batch_size: int = 0
    learning_rate: float | None = None
    learning_rate_multiplier: float | None = None
    adapter_size: int | None = None


@dataclass(frozen=True)
class Sampling:
    """A tuned model's default sampling, given when it was created (the Gemini API's
    TunedModel `temperature`, `top_p`, `top_k`): what a Generate call that leaves one of
    them unset is sent with (service.training_format). None: the upstream model's own."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None

    def given(self) -> dict[str, float | int]:
        """The defaults that were given, by field name (a GenerationConfig's and a
        TunedModel's names too)."""
        return {
            f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None
        }


@dataclass(frozen=True)
class Example:
    text_input: str
    output: str


@dataclass(frozen=True)
class DataStats:
    """What the upstream counted in a job's training data (Vertex AI reports it)."""

    example_count: int = 0
    total_characters: int = 0
    billable_tokens: int = 0
    step_count: int = 0


@dataclass(frozen=True)
class Checkpoint:
    """A saved state of the tuned model, servable from its own endpoint (Vertex AI)."""

    checkpoint_id: str
    epoch: int = 0
    step: int = 0
    endpoint: str = ""


@dataclass(frozen=True)
class Progress:
    completed_steps: int = 0
    total_steps: int = 0
    completed_percent: float = 0.0


@dataclass(frozen=True)
class TrainingFile:
    """A file of examples in the platform's bucket (core.dataset_files): where it is, its
    size and CRC32C, and the keys of each line's input and output."""

    uri: str
    size: int
    crc32c: str
    input_field: str = "text_input"
    output_field: str = "output"


@dataclass(frozen=True)
class Job:
    """One tuning job of one tenant."""

    id: str
    tenant: str
    base_model: str
    state: JobState = JobState.QUEUED
    display_name: str = ""
    description: str = ""
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    labels: dict[str, str] = field(default_factory=dict)
    example_count: int = 0
    dataset: str = ""
    request_hash: str = ""
    tuned_model: str = ""
    operation: str = ""
    progress: Progress = field(default_factory=Progress)
    snapshots: Sequence[Snapshot] = NO_SNAPSHOTS
    """The loss at each completed step (core.domain.snapshots): Snapshots once read back,
    and as the worker records them."""
    error: JobError | None = None
    create_time: float = 0.0
    update_time: float = 0.0
    start_time: float | None = None
    end_time: float | None = None
    status_fetch_time: float | None = None
    polls: int = 0
    attempts: int = 0
    retrying_since: float | None = None
    deleted: bool = False
    system_instruction: str = ""
    validation_dataset: str = ""
    export_last_checkpoint_only: bool = False
    provider: ProviderChoice = field(default_factory=ProviderChoice)
    """Which upstream tunes the job, and where: the tenant's provider when the job was
    created, kept so that a later change of the tenants file does not move the job."""
    data_stats: DataStats | None = None
    checkpoints: tuple[Checkpoint, ...] = ()
    tuned_model_endpoint: str = ""
    training_file: TrainingFile | None = None
    """The job's own copy of its dataset's file, until it is submitted; None for a job of
    inline examples (those are stored with the job in Redis)."""
    tuned_model_name: str = ""
    """The tuned model's resource name, where it is not the ref in `tuned_model` (Vertex
    AI: the ref is the tuning job, the model `projects/../models/{id}@1`)."""
    retry_reason: str = ""
    """Why the last failed attempt failed (for its RETRY event); empty once one succeeds."""
    progress_time: float | None = None
    """When the upstream's progress last moved, as the worker saw it (None: not yet seen)."""
    stalled_since: float | None = None
    """When progress last moved, once it has not for `TUNING_STALL_AFTER_S` (a stall);
    None while it moves (core.domain.lifecycle.observed)."""
    prompt_template: str = ""
    """The format of the job's prompts (core.domain.prompt_template), or empty."""
    source_job: str = ""
    """The id of the job this one was re-tuned from, or empty."""
    waiting_for: tuple[str, ...] = ()
    """The Vertex AI projects whose concurrency quota a QUEUED job waits for, in the line
    of each (core.redis.project_slots); () once it is placed, or if it never waited."""
    facade_id: str = ""
    """The `tuned_model_id` a create through the Gemini API facade gave: the job answers
    to `tunedModels/{facade_id}` there (service.gemini_facade.names); empty otherwise."""
    sampling: Sampling | None = None
    """The tuned model's default sampling, if its create gave any (only the Gemini API
    facade's CreateTunedModel can); None otherwise."""
    traceparent: str = ""
    """The W3C traceparent of the call that created the job (core.runtime.tracing): the
    worker's visits are its children, so they join that caller's trace. Empty when
    tracing was off."""

    @property
    def name(self) -> str:
        return JOB_NAME_PREFIX + self.id

    @property
    def needs_worker(self) -> bool:
        """Unfinished, or deleted and not yet cleaned up upstream."""
        return self.deleted or not self.state.terminal

    @property
    def tuned_model_id(self) -> str:
        """The upstream id this job's model is created under, derived from the job alone.

        Because it never changes, a retry after any crash asks the upstream to create the
        same id again and gets 409 ALREADY_EXISTS, and adopts the model instead of
        creating a second one.
        """
        return TUNED_MODEL_ID_PREFIX + self.id

    def replace(self, **changes: Any) -> Job:
        """`dataclasses.replace`, several times as fast (`_made`)."""
        return _made(Job, self.__dict__ | changes)

    def to_json(self) -> str:
        # orjson writes dataclasses (nested ones too) and str enums itself, several times
        # faster than json.dumps(dataclasses.asdict(...)); this runs on every create and
        # every status change. tests/core/domain/test_job.py holds it to asdict's content,
        # the snapshots in their columns.
        job = self
        if type(self.snapshots) is not Snapshots:  # a tuple, as a caller may give them
            job = self.replace(snapshots=Snapshots.of(self.snapshots))
        return orjson.dumps(job, default=_record_form).decode()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Job:
        """The record `to_json` wrote, or one written before some of today's fields."""
        data = orjson.loads(raw)  # written by orjson (to_json); read on every visit
        data["state"] = JobState(data["state"])
        data["hyperparameters"] = _made(Hyperparameters, data["hyperparameters"])
        data["progress"] = _made(Progress, data["progress"])
        data["snapshots"] = Snapshots.from_record(data["snapshots"])
        if data["error"] is not None:
            data["error"] = JobError(**data["error"])
        if "provider" in data:
            data["provider"] = _provider(data["provider"])
        if data.get("data_stats") is not None:
            data["data_stats"] = DataStats(**data["data_stats"])
        if data.get("training_file") is not None:
            data["training_file"] = TrainingFile(**data["training_file"])
        if "checkpoints" in data:
            data["checkpoints"] = tuple(Checkpoint(**c) for c in data["checkpoints"])
        data["waiting_for"] = tuple(data.get("waiting_for", ()))
        if data.get("sampling") is not None:
            data["sampling"] = Sampling(**data["sampling"])
        return _made(cls, data)


_D = TypeVar("_D")


def _record_form(value: object) -> object:
    """What orjson writes for the one type in a Job it does not know."""
    if isinstance(value, Snapshots):
        return value.record()
    raise TypeError(f"{type(value).__name__} is not part of a job record")


def _made(cls: type[_D], values: dict[str, Any]) -> _D:
    """`cls(**values)` for a frozen dataclass; without its generated __init__ when
    `values` names exactly its fields (a record as `to_json` writes it today).

    A frozen dataclass's __init__ sets each field through `object.__setattr__`, which
    made building a Job (45 fields, on every read of one and every change to one) a tenth
    of a worker's CPU per poll. These classes have no __post_init__ and no field the
    __init__ computes, so filling the instance's __dict__ makes the same object:
    tests/core/domain/test_job.py holds it to `Job(**fields)` and `dataclasses.replace`.
    A record written before some field existed takes the __init__, and its defaults."""
    if values.keys() != _field_names(cls):
        return cls(**values)
    made = object.__new__(cls)
    made.__dict__.update(values)
    return made


_FIELD_NAMES: dict[type[Any], frozenset[str]] = {}


def _field_names(cls: type[Any]) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return names


def _provider(data: dict[str, Any]) -> ProviderChoice:
    vertex = data["vertex"]
    target = None if vertex is None else VertexTarget(**vertex)
    pools = tuple(VertexTarget(**p) for p in data.get("pools", ()))
    return ProviderChoice(ProviderKind(data["kind"]), target, pools)


def random_id(prefix: str) -> str:
    """A random resource id: a letter, then 19 lowercase base32 characters (95 bits)."""
    return prefix + _base32(secrets.token_bytes(12))


def id_shape(prefix: str) -> re.Pattern[str]:
    """Exactly the ids `random_id(prefix)` (and, for "j", `new_job_id`) can make.

    A name is checked against this before any lookup: an id of another shape cannot
    exist, so it is refused as INVALID_ARGUMENT, never read from Redis or cached.
    """
    return re.compile(re.escape(prefix) + f"[a-z2-7]{{{RANDOM_ID_CHARS}}}")


_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_BASE32_SHIFTS = tuple(range(5 * (RANDOM_ID_CHARS - 1), -1, -5))


def _base32(digest: bytes) -> str:
    """The first RANDOM_ID_CHARS characters of `digest` in lowercase base32 (RFC 4648), as
    `base64.b32encode(digest).decode().lower()` begins; written out because base64's is
    pure Python, and a third of a create's id (this runs on every create)."""
    bits = 5 * RANDOM_ID_CHARS
    top = int.from_bytes(digest[: (bits + 7) // 8], "big") >> (-bits % 8)
    return "".join([_BASE32[(top >> shift) & 31] for shift in _BASE32_SHIFTS])


def new_job_id(tenant: str, request_id: str) -> str:
    """A job id: derived from (tenant, request_id) when the caller gave one, else random.

    Deriving it makes a client's retry land on the same job, and so on the same
    upstream model, even if Redis lost the first attempt (AIP-155).
    """
    if request_id:
        digest = hashlib.sha256(f"{tenant}\0{request_id}".encode()).digest()
    else:
        digest = secrets.token_bytes(32)
    return JOB_ID_PREFIX + _base32(digest)


JOB_ID_SHAPE = id_shape(JOB_ID_PREFIX)


def job_id_of_model(model_id: str) -> str | None:
    """The id of the job whose `tuned_model_id` is `model_id`; None for a model not ours."""
    job_id = model_id.removeprefix(TUNED_MODEL_ID_PREFIX)
    if job_id == model_id or not JOB_ID_SHAPE.fullmatch(job_id):
        return None
    return job_id


def encode_examples(examples: list[Example]) -> bytes:
    return encode_pairs([e.text_input for e in examples], [e.output for e in examples])


def encode_pairs(inputs: Sequence[str], outputs: Sequence[str]) -> bytes:
    """Examples as stored, `[[input, output], ...]`, from their strings as they are.

    A 4 MB dataset has tens of thousands of examples: this needs no `Example` of each,
    and orjson writes them five times as fast as `json` (as UTF-8 rather than ASCII
    escapes; the strings were checked to be valid Unicode, as protobuf strings are).
    """
    return orjson.dumps(list(zip(inputs, outputs, strict=True)))


def encode_example_pairs(pairs: Sequence[tuple[str, str]]) -> bytes:
    """`encode_pairs` of examples already paired as (input, output)."""
    return orjson.dumps(pairs)


def decode_examples(raw: bytes) -> list[Example]:
    return [Example(text_input=i, output=o) for i, o in json.loads(raw)]
