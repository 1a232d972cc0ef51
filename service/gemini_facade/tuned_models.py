"""Reading and changing a tenant's tuned models by their facade names, over JobsApi.

Every lookup goes through service.gemini_facade.names (a name of the wrong shape is
INVALID_ARGUMENT before any lookup) and then the StatusReader, the TuningService's own
read (its near cache, its tenancy: another tenant's model is NOT_FOUND as one that
never existed). Errors of the jobs' behaviour name `tuningJobs/{id}`; `renamed` answers
them with the name the caller sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.domain.job import JOB_NAME_PREFIX, Job
from core.errors import FailedPrecondition, NotFound
from service.gemini_facade.names import job_id_for
from service.status import StatusReader


def job_name_for(tenant: str, model_id: str) -> str:
    """`tuningJobs/{id}` of the job `tunedModels/{model_id}` names (a checked id)."""
    job_id = job_id_for(tenant, model_id)
    if job_id is None:  # names.tuned_model_id_in checked the id: it has a shape
        raise NotFound(f"tunedModels/{model_id} not found")
    return JOB_NAME_PREFIX + job_id


async def read_job(status: StatusReader, tenant: str, model_id: str, shown: str) -> Job:
    """The tenant's job `tunedModels/{model_id}` names; NotFound, naming `shown`, if none."""
    job_id = job_name_for(tenant, model_id).removeprefix(JOB_NAME_PREFIX)
    job = await status.get(tenant, job_id)
    if job is None:
        raise NotFound(f"{shown} not found")
    return job


@contextmanager
def renamed(job_name: str, shown: str) -> Iterator[None]:
    """Answer NotFound and FailedPrecondition naming `shown` where they name `job_name`."""
    try:
        yield
    except NotFound as exc:
        message = exc.message.replace(job_name, shown)
        raise NotFound(message, reason=exc.reason, metadata=exc.metadata) from None
    except FailedPrecondition as exc:
        message = exc.message.replace(job_name, shown)
        raise FailedPrecondition(message, reason=exc.reason, metadata=exc.metadata) from None
