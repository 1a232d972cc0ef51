"""`tunedModels/{id}`: which of a tenant's jobs a name of the facade means.

A tuned model created through the facade with `tuned_model_id` X is the job the
TuningService's create makes for request_id `tunedModels:X` (the job id is derived from
tenant and request_id, core.domain.job.new_job_id), so the name needs no index of its
own, and a repeated create lands on the same job. A job made through tuning.v1 answers
to `tunedModels/{job_id}`. A name that fits neither shape cannot exist, and is refused
before any lookup.
"""

from __future__ import annotations

import re

from core.domain.job import JOB_ID_SHAPE, new_job_id

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

