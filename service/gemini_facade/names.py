"""`tunedModels/{id}`: which of a tenant's jobs a name of the facade means.

A tuned model created through the facade with `tuned_model_id` X is the job the
TuningService's create makes for request_id `tunedModels:X` (the job id is derived from
tenant and request_id, core.domain.job.new_job_id), so the name needs no index of its
own, and a repeated create lands on the same job. A job made through tuning.v1 answers
to `tunedModels/{job_id}`. A name that fits neither shape cannot exist, and is refused
before any lookup.

The job keeps the create's `tuned_model_id` (`Job.facade_id`), so an answer names
`tunedModels/{that id}` (`model_id_of`). Each tuned model has one operation, its create,
named `tunedModels/{id}/operations/create` (`operation_name`).
"""

from __future__ import annotations

import re

from core.domain.job import JOB_ID_SHAPE, Job, new_job_id
from core.errors import FieldViolation, InvalidArgument, echo

TUNED_MODEL_PREFIX = "tunedModels/"
TUNED_MODEL_ID = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
"""Google's shape of a tuned model id: 1-40 lowercase letters, digits or dashes, the
first a letter, the last not a dash."""
REQUEST_ID_PREFIX = "tunedModels:"


def request_id_for(tuned_model_id: str) -> str:
    """The tuning.v1 request_id a facade create with `tuned_model_id` is made with."""
    return REQUEST_ID_PREFIX + tuned_model_id


def job_id_for(tenant: str, tuned_model_id: str) -> str | None:
    """The id of the job `tunedModels/{tuned_model_id}` names for `tenant` (None: the id
    has neither shape, so no job can answer to it)."""
    if JOB_ID_SHAPE.fullmatch(tuned_model_id):
        return tuned_model_id
    if TUNED_MODEL_ID.fullmatch(tuned_model_id):
        return new_job_id(tenant, request_id_for(tuned_model_id))
    return None


OPERATIONS_SUFFIX = "/operations"
CREATE_OPERATION_ID = "create"
"""The id of a tuned model's one operation, its create: `tunedModels/{id}/operations/create`."""
MAX_NAME_CHARS = 128
"""Longer names are refused before their shape is looked at (ids are at most 40 chars)."""


def model_id_of(job: Job) -> str:
    """The id the job answers to as `tunedModels/{id}`: the facade create's
    `tuned_model_id`, or, for a job made through tuning.v1, its own id."""
    return job.facade_id or job.id


def tuned_model_name(job: Job) -> str:
    """`tunedModels/{id}` of the job (`model_id_of`)."""
    return TUNED_MODEL_PREFIX + model_id_of(job)


def operation_name(job: Job) -> str:
    """The name of the job's create operation."""
    return f"{tuned_model_name(job)}{OPERATIONS_SUFFIX}/{CREATE_OPERATION_ID}"


def tuned_model_id_in(name: str, field: str = "name") -> str:
    """The id in `tunedModels/{id}`; INVALID_ARGUMENT, before any lookup, for a name of
    any other shape (or one no job can answer to)."""
    model_id = _after_prefix(name, TUNED_MODEL_PREFIX, field)
    if not TUNED_MODEL_ID.fullmatch(model_id) and not JOB_ID_SHAPE.fullmatch(model_id):
        raise _bad_name(name, field, "tunedModels/{id}, the id 1-40 of [a-z0-9-]")
    return model_id


def tuned_model_id_of_operation(name: str, field: str = "name") -> str:
    """The tuned model id in `tunedModels/{id}/operations/create`; INVALID_ARGUMENT for
    any other name."""
    model_name, sep, rest = name.partition(OPERATIONS_SUFFIX + "/")
    if not sep or rest != CREATE_OPERATION_ID or len(name) > MAX_NAME_CHARS:
        raise _bad_name(
            name, field, "tunedModels/{id}/operations/create, as CreateTunedModel answered"
        )
    return tuned_model_id_in(model_name, field)


def _after_prefix(name: str, prefix: str, field: str) -> str:
    if len(name) > MAX_NAME_CHARS or not name.startswith(prefix):
        raise _bad_name(name, field, f"{prefix}{{id}}")
    return name.removeprefix(prefix)


def _bad_name(name: str, field: str, shape: str) -> InvalidArgument:
    return InvalidArgument(
        f"{echo(name)} is not a valid name", [FieldViolation(field, f"must be {shape}")]
    )
