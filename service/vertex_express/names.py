"""The facade's resource names, and the one parser of the paths it serves.

Vertex AI names a tuning job `projects/{project}/locations/{location}/tuningJobs/{id}`,
and google-genai calls a job back by its name used as a path (`GET /v1beta1/{name}`,
`POST /v1beta1/{name}:cancel`), so answered names must be paths the facade serves. Here
the project is the tenant, the location is always LOCATION, and the id is the platform's
job id (`tuningJobs/{id}` in tuning.v1). A tuned model is served from
`.../endpoints/{job id}` (`models.generate_content(model=<that endpoint>)`), a checkpoint
from `.../endpoints/{job id}-{checkpoint id}`.

Express-mode clients send collection paths without a parent (`/v1beta1/tuningJobs`); a
path with one is served too, if its project is the caller's: another project's name is
NOT_FOUND, exactly as another tenant's job is. Every path is bounded (MAX_PATH_CHARS)
before it is matched, and the patterns match in linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from core.domain.job import JOB_NAME_PREFIX
from core.errors import NotFound, echo
from core.security.tenants import TENANT_ID

API_VERSION = "v1beta1"
"""The version google-genai speaks to Vertex AI, the first segment of every path."""
LOCATION = "global"
"""The location in every name answered (express mode's endpoint is the global one)."""
MAX_PATH_CHARS = 512
"""The longest path looked at; a longer one is NOT_FOUND unread."""

_PARENT = rf"(?:projects/(?P<project>{TENANT_ID.pattern})/locations/[a-z0-9-]{{1,32}}/)?"
_JOB_ID = r"(?P<job_id>j[a-z2-7]{19})"
_CHECKPOINT_ID = r"(?:-(?P<checkpoint_id>[A-Za-z0-9_-]{1,20}))?"


class Route(Enum):
    """What a path asks for (with the HTTP method that goes with it)."""

    JOBS = re.compile(_PARENT + r"tuningJobs")
    JOB = re.compile(_PARENT + r"tuningJobs/" + _JOB_ID)
    CANCEL = re.compile(_PARENT + r"tuningJobs/" + _JOB_ID + r":cancel")
    GENERATE = re.compile(_PARENT + r"endpoints/" + _JOB_ID + _CHECKPOINT_ID + r":generateContent")
    STREAM = re.compile(
        _PARENT + r"endpoints/" + _JOB_ID + _CHECKPOINT_ID + r":streamGenerateContent"
    )


@dataclass(frozen=True)
class Target:
    """A parsed path: its route and, where it names one, the job (and checkpoint)."""

    route: Route
    job_id: str = ""
    checkpoint_id: str = ""

    @property
    def job_name(self) -> str:
        """The tuning.v1 name of the job (`tuningJobs/{id}`)."""
        return JOB_NAME_PREFIX + self.job_id

    @property
    def model(self) -> str:
        """The tuning.v1 GenerateContent `model` for the endpoint."""
        if self.checkpoint_id:
            return f"{self.job_name}/checkpoints/{self.checkpoint_id}"
        return self.job_name


def target_of(path: str, tenant: str) -> Target:
    """The route of `path` (after `/v1beta1/`) for the caller `tenant`; NotFound for a
    path the facade does not serve, or one under another tenant's project."""
    if len(path) <= MAX_PATH_CHARS:
        for route in Route:
            found = route.value.fullmatch(path)
            if found is None:
                continue
            if found["project"] not in (None, tenant):
                break
            groups = found.groupdict()
            return Target(route, groups.get("job_id") or "", groups.get("checkpoint_id") or "")
    raise NotFound(f"{echo(path)} not found")


def route_of(path: str) -> Route | None:
    """The route `path` (after `/v1beta1/`) has the shape of, whoever asks; None if it has
    none. For records of a refused caller (its audit record names the method tried); what
    is served goes by `target_of`."""
    if len(path) <= MAX_PATH_CHARS:
        for route in Route:
            if route.value.fullmatch(path) is not None:
                return route
    return None


def parent(tenant: str) -> str:
    """`projects/{tenant}/locations/{LOCATION}`, the parent of the tenant's resources."""
    return f"projects/{tenant}/locations/{LOCATION}"


def job_name(tenant: str, job_id: str) -> str:
    """The Vertex AI name of the tenant's job `job_id`."""
    return f"{parent(tenant)}/tuningJobs/{job_id}"


def model_name(tenant: str, job_id: str) -> str:
    """The Vertex AI name of the job's tuned model."""
    return f"{parent(tenant)}/models/{job_id}"


def endpoint_name(tenant: str, job_id: str, checkpoint_id: str = "") -> str:
    """The endpoint serving the job's tuned model (or one of its checkpoints)."""
    suffix = f"-{checkpoint_id}" if checkpoint_id else ""
    return f"{parent(tenant)}/endpoints/{job_id}{suffix}"
