"""Vertex resource paths, ownership checks and the errors they answer.

Paths name a project by id or number and a location; resource names in answers always use the
number. A resource belongs to a project (by number), a location, and the OAuth client that
created its job: another client gets 403 ``IAM_PERMISSION_DENIED`` (``Permission
'aiplatform.tuningJobs.get' denied on resource '//aiplatform.googleapis.com/…' (or it may not
exist).``, as Vertex words it), and a resource of another project or location, or none, is 404.
"""

from __future__ import annotations

import re

from aiohttp import web

from emulator.errors import TYPE_PREFIX, ApiError, invalid_argument
from emulator.routes import VERTEX_SERVICE
from emulator.state import EmulatorState
from emulator.tokens import AccessToken
from emulator.vertex_create import Placement
from emulator.vertex_store import TuningJobRecord, project_number

_PROJECT = re.compile(r"[a-z][a-z0-9-]{0,29}|[0-9]{1,20}")
_LOCATION = re.compile(r"[a-z][a-z0-9-]{0,62}")
_NUMERIC_ID = re.compile(r"[0-9]{1,20}")
MODEL_VERSIONS = ("", "@1", "@default")


def placement(request: web.Request, state: EmulatorState, token: AccessToken) -> Placement:
    """The project, location and API version of the request's path; 400 if malformed."""
    project, location = request.match_info["project"], request.match_info["location"]
    if not _PROJECT.fullmatch(project):
        raise invalid_argument(f"Invalid project: {project[:64]}.", "parent")
    if not _LOCATION.fullmatch(location):
        raise invalid_argument(f"Invalid location: {location[:64]}.", "parent")
    number = project_number(project, state.config.vertex_project_numbers)
    version = request.match_info["version"]
    return Placement(project, number, location, token.client_id, version)


def owned_job(
    request: web.Request, state: EmulatorState, token: AccessToken, permission: str
) -> TuningJobRecord:
    """The caller's tuning job named by the path; 404 or 403 otherwise."""
    where = placement(request, state, token)
    job_id = request.match_info["job_id"]
    name = f"projects/{where.project_number}/locations/{where.location}/tuningJobs/{job_id}"
    record = state.vertex.job(job_id) if _NUMERIC_ID.fullmatch(job_id) else None
    return _owned(record, where, name, "TuningJob", permission)


def owned_model(
    request: web.Request, state: EmulatorState, token: AccessToken, permission: str
) -> TuningJobRecord:
    """The job whose existing tuned model the path names (``{id}``, ``{id}@1``)."""
    where = placement(request, state, token)
    model_id, at, version = request.match_info["model_id"].partition("@")
    name = f"projects/{where.project_number}/locations/{where.location}/models/{model_id}"
    record = state.vertex.job_of_model(model_id) if at + version in MODEL_VERSIONS else None
    if record is not None and not record.model_exists(state.clock()):
        record = None
    return _owned(record, where, name, "Model", permission)


def owned_endpoint(
    request: web.Request, state: EmulatorState, token: AccessToken, permission: str
) -> tuple[TuningJobRecord, str]:
    """The job and id of the existing endpoint the path names."""
    where = placement(request, state, token)
    endpoint_id = request.match_info["endpoint_id"]
    name = f"projects/{where.project_number}/locations/{where.location}/endpoints/{endpoint_id}"
    record = state.vertex.job_of_endpoint(endpoint_id)
    if record is not None and endpoint_id not in record.live_endpoints(state.clock()):
        record = None
    return _owned(record, where, name, "Endpoint", permission), endpoint_id


def _owned(
    record: TuningJobRecord | None, where: Placement, name: str, kind: str, permission: str
) -> TuningJobRecord:
    same_place = record is not None and (record.project_number, record.location) == (
        where.project_number,
        where.location,
    )
    if record is None or not same_place:
        raise not_found(kind, name)
    if record.owner != where.owner:
        raise permission_denied(permission, name)
    return record


def not_found(kind: str, name: str) -> ApiError:
    """404 for a Vertex resource that does not exist (here)."""
    return ApiError(404, f"{kind} {name[:300]} does not exist.")


def permission_denied(permission: str, name: str) -> ApiError:
    """403 IAM_PERMISSION_DENIED, worded as Vertex words it."""
    resource = f"//{VERTEX_SERVICE}/{name[:300]}"
    info = {
        "@type": TYPE_PREFIX + "google.rpc.ErrorInfo",
        "reason": "IAM_PERMISSION_DENIED",
        "domain": VERTEX_SERVICE,
        "metadata": {"permission": permission, "resource": name[:300]},
    }
    message = f"Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
    return ApiError(403, message, details=(info,))
