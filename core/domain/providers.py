"""Which upstream tunes a tenant's jobs: the provider its tenants-file entry names.

    "provider": "gemini_api"                       (the default: the Gemini API)
    "provider": {"kind": "vertex", "project": "acme-ml", "location": "us-central1",
                 "staging": "gs://acme-ml-tuning/platform",
                 "pools": [{"project": "acme-ml-2", "location": "us-central1",
                            "staging": "gs://acme-ml-2-tuning/platform"}]}

`gemini_api` tunes through `tunedModels` of the Gemini API; `vertex` through Vertex AI
`projects/{project}/locations/{location}/tuningJobs` in the tenant's own project, with
training files staged under `staging` (a bucket in that project, which Vertex's service
agent can read). Each kind needs its OAuth scope on the tenant's credential, checked when
the credential is set.

A Vertex entry may list more projects, `pools`, each a project, location and staging bucket
like the main one: quota pools. Vertex AI limits how many tuning jobs a project runs at
once; a job is placed on the first of `targets()` with a free slot (worker.steps), and
stays there for its whole life (`placed_on`).

What each kind can do with a job is written here once (`JobOption`, `ProviderKind.refusal`):
the API refuses a job asking its tenant's provider for something it cannot do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from core.security.authorized_user import CLOUD_PLATFORM_SCOPE, TUNING_SCOPE

PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
"""A Google Cloud project id (6-30 characters)."""
LOCATION = re.compile(r"[a-z]+-[a-z]+[0-9]+|global")
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
PREFIX = re.compile(r"[A-Za-z0-9._/-]{0,200}")
MAX_POOLS = 16
"""The most `pools` a Vertex provider may list."""


class JobOption(StrEnum):
    """A part of a job that not every provider can do: its field path under `tuning_job`."""

    EPOCH_COUNT = "hyperparameters.epoch_count"
    BATCH_SIZE = "hyperparameters.batch_size"
    LEARNING_RATE = "hyperparameters.learning_rate"
    LEARNING_RATE_MULTIPLIER = "hyperparameters.learning_rate_multiplier"
    ADAPTER_SIZE = "hyperparameters.adapter_size"
    SYSTEM_INSTRUCTION = "system_instruction"
    VALIDATION_DATASET = "validation_dataset"
    EXPORT_LAST_CHECKPOINT_ONLY = "export_last_checkpoint_only"


class ProviderKind(StrEnum):
    GEMINI_API = "gemini_api"
    VERTEX = "vertex"

    @property
    def required_scope(self) -> str:
        """The OAuth scope a tenant's credential must carry to tune on this provider."""
        return CLOUD_PLATFORM_SCOPE if self is ProviderKind.VERTEX else TUNING_SCOPE

    def refusal(self, option: JobOption) -> str | None:
        """Why this provider cannot do `option` (for a field violation); None if it can."""
        if option in ACCEPTED[self]:
            return None
        why = _WHY_NOT.get((self, option), "it has no such option")
        return f"not accepted by the {self.value} provider ({why})"


ACCEPTED: dict[ProviderKind, frozenset[JobOption]] = {
    ProviderKind.GEMINI_API: frozenset(
        {
            JobOption.EPOCH_COUNT,
            JobOption.BATCH_SIZE,
            JobOption.LEARNING_RATE,
            JobOption.LEARNING_RATE_MULTIPLIER,
        }
    ),
    ProviderKind.VERTEX: frozenset(
        {
            JobOption.EPOCH_COUNT,
            JobOption.LEARNING_RATE_MULTIPLIER,
            JobOption.ADAPTER_SIZE,
            JobOption.SYSTEM_INSTRUCTION,
            JobOption.VALIDATION_DATASET,
            JobOption.EXPORT_LAST_CHECKPOINT_ONLY,
        }
    ),
}
"""The options each provider can do (Vertex AI: its tuningJobs v1); it refuses the others."""

_WHY_NOT: dict[tuple[ProviderKind, JobOption], str] = {
    (ProviderKind.GEMINI_API, JobOption.ADAPTER_SIZE): "the Gemini API has no adapter size",
    (ProviderKind.GEMINI_API, JobOption.SYSTEM_INSTRUCTION): (
        "the Gemini API tunes on input/output pairs only"
    ),
    (ProviderKind.GEMINI_API, JobOption.VALIDATION_DATASET): (
        "the Gemini API has no validation dataset"
    ),
    (ProviderKind.GEMINI_API, JobOption.EXPORT_LAST_CHECKPOINT_ONLY): (
        "the Gemini API keeps no checkpoints"
    ),
    (ProviderKind.VERTEX, JobOption.BATCH_SIZE): "Vertex AI tuningJobs v1 has no batch_size",
    (ProviderKind.VERTEX, JobOption.LEARNING_RATE): (
        "Vertex AI tuningJobs v1 has no learning_rate; use learning_rate_multiplier"
    ),
}


def vertex_host(location: str) -> str:
    """Vertex AI's regional host; the location in host and path must match."""
    return f"https://{location}-aiplatform.googleapis.com"


@dataclass(frozen=True)
class VertexTarget:
    """Where a Vertex tenant's jobs run and its training files are staged."""

    project: str
    location: str
    bucket: str
    prefix: str = ""

    @property
    def staging_uri(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}".rstrip("/")

    def staged_object(self, job_id: str, file_name: str) -> str:
        """The object name under which a job's file is staged (the same on every retry)."""
        return "/".join(p for p in (self.prefix, job_id, file_name) if p)


@dataclass(frozen=True)
class ProviderChoice:
    """A tenant's provider: its kind, and for Vertex where."""

    kind: ProviderKind = ProviderKind.GEMINI_API
    vertex: VertexTarget | None = None
    pools: tuple[VertexTarget, ...] = ()
    """More Vertex targets a job may be placed on, tried after `vertex`."""

    def targets(self) -> tuple[VertexTarget, ...]:
        """Where a job may run, in the order tried: `vertex`, then `pools` (none for the
        Gemini API)."""
        return () if self.vertex is None else (self.vertex, *self.pools)

    def placed_on(self, target: VertexTarget) -> ProviderChoice:
        """This choice with the job placed on `target` for good (no other pool left)."""
        return ProviderChoice(self.kind, target)

    @classmethod
    def from_json(cls, raw: object) -> ProviderChoice:
        """The tenants file's `provider` value; ValueError saying what is wrong."""
        if raw is None or raw == ProviderKind.GEMINI_API.value:
            return cls()
        if not isinstance(raw, dict):
            kinds = ", ".join(k.value for k in ProviderKind)
            raise ValueError(f"provider must be one of {kinds} or an object with a kind")
        kind = raw.get("kind")
        if kind == ProviderKind.GEMINI_API.value and raw.keys() == {"kind"}:
            return cls()
        if kind != ProviderKind.VERTEX.value:
            raise ValueError(f"provider kind {kind!r} is not gemini_api or vertex")
        main = {k: v for k, v in raw.items() if k not in ("kind", "pools")}
        choice = cls(ProviderKind.VERTEX, _vertex_target(main), _pools(raw.get("pools", [])))
        projects = [t.project for t in choice.targets()]
        if len(set(projects)) != len(projects):
            raise ValueError("vertex provider: a project appears twice among project and pools")
        return choice


ProviderOf = Callable[[str], ProviderChoice]
"""A tenant's provider, by tenant id (the API's view of the tenants file)."""


def _pools(raw: object) -> tuple[VertexTarget, ...]:
    if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
        raise ValueError("vertex provider: pools must be a list of objects")
    if len(raw) > MAX_POOLS:
        raise ValueError(f"vertex provider: at most {MAX_POOLS} pools")
    return tuple(_vertex_target(p) for p in raw)


def _vertex_target(raw: dict[str, object]) -> VertexTarget:
    unknown = raw.keys() - {"project", "location", "staging"}
    if unknown:
        raise ValueError(f"vertex provider: unknown keys {sorted(unknown)}")
    project = _matching(raw, "project", PROJECT_ID)
    location = _matching(raw, "location", LOCATION)
    staging = str(raw.get("staging", ""))
    bucket, _, prefix = staging.removeprefix("gs://").partition("/")
    prefix = prefix.strip("/")
    valid = staging.startswith("gs://") and BUCKET.fullmatch(bucket) and PREFIX.fullmatch(prefix)
    if not valid or ".." in prefix.split("/"):
        raise ValueError("vertex provider: staging must be gs://BUCKET or gs://BUCKET/PREFIX")
    return VertexTarget(project, location, bucket, prefix)


def _matching(raw: dict[str, object], key: str, shape: re.Pattern[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not shape.fullmatch(value):
        raise ValueError(f"vertex provider: {key} must match {shape.pattern}")
    return value
