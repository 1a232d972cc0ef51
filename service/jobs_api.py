"""What each RPC does, as plain async functions of a tenant and a request.

Reads come from Redis only; nothing here calls the upstream. Writes go through the
job store's compare-and-set and the state machine in core.domain.lifecycle.
"""

from __future__ import annotations

import math

from core.domain import lifecycle
from core.domain.job import JOB_NAME_PREFIX, Job, Progress, new_job_id
from core.domain.quotas import QuotasFor
from core.domain.states import JobState
from core.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound, Reason, echo
from core.redis.admission import Admission
from core.redis.job_store import JobStore
from core.redis.schedule import Schedule
from core.runtime.clock import Clock
from core.runtime.settings import Settings
from service import listing
from service.convert import job_from_request
from service.dataset_store import DatasetStore
from service.datasets_api import dataset_id_of
from service.request_parsing import ParsedCreate
from service.validation import validate_create

DEFAULT_EPOCHS = 5
DEFAULT_BATCH_SIZE = 4


class JobsApi:
    """The tuning API's behaviour, behind the thin gRPC servicer."""

    def __init__(  # noqa: PLR0917 (the API's collaborators, each one of a kind)
        self,
        store: JobStore,
        schedule: Schedule,
        datasets: DatasetStore,
        admission: Admission,
        quotas_for: QuotasFor,
        settings: Settings,
        clock: Clock,
    ):
        self._store = store
        self._schedule = schedule
        self._datasets = datasets
        self._admission = admission
        self._quotas_for = quotas_for
        self._settings = settings
        self._clock = clock

    async def create(self, tenant: str, parsed: ParsedCreate) -> tuple[Job, int]:
        """Validate, store and queue; a repeated request_id answers the job it made.

        Returns the job and its queue position. One Redis round trip spends the tenant's
        create quota and stores the job. A second puts the tenant in the admission ring,
        but only when this job made its queue non-empty (position 1): a tenant with jobs
        already queued is in the ring, or is being put back by whoever queued them or by
        the round that is checking its queue (core.redis.admission). A retry of a QUEUED job
        joins too, which repairs a first attempt that died before joining.
        """
        validate_create(parsed, self._settings)
        request = parsed.request
        job, examples = job_from_request(
            request,
            tenant=tenant,
            job_id=new_job_id(tenant, request.request_id),
            now=self._clock(),
        )
        job, content = await self._training_data(job, examples)
        quotas = self._quotas_for(tenant)
        if request.validate_only:
            await self._store.check_create_quota(tenant, quotas)
            return job.replace(progress=Progress(total_steps=estimated_total_steps(job))), 0
        stored, created, position = await self._store.create(job, content, quotas=quotas)
        if stored.deleted:
            raise AlreadyExists(
                f"request_id {echo(request.request_id)} made {stored.name}, which was deleted; "
                "use a new request_id",
                reason=Reason.REQUEST_ID_REUSED,
            )
        if (created and position == 1) or (not created and stored.state == JobState.QUEUED):
            await self._admission.add_to_ring(tenant)
        return stored, position

    async def queue_position(self, job: Job) -> int:
        """Where a QUEUED job waits in its tenant's queue (0 when it is not waiting)."""
        if job.state != JobState.QUEUED:
            return 0
        return await self._admission.position(job.tenant, job.id)

    async def _training_data(self, job: Job, inline: bytes) -> tuple[Job, bytes]:
        """The examples to store with the job: inline ones, or the referenced dataset's."""
        if not job.dataset:
            return job, inline
        dataset_id = dataset_id_of(job.dataset, "tuning_job.dataset")
        record = await self._datasets.get(job.tenant, dataset_id)
        content = await self._datasets.examples(job.tenant, dataset_id)
        if record is None or content is None:
            raise InvalidArgument(
                f"{job.dataset} not found",
                [FieldViolation("tuning_job.dataset", "not found; upload it with UploadDataset")],
            )
        return job.replace(example_count=record.stats.examples), content

    async def list(
        self, tenant: str, *, page_size: int, page_token: str, filter_text: str
    ) -> tuple[list[Job], str]:
        where = listing.parse_filter(filter_text)
        size = listing.page_size_of(page_size)
        cursor = listing.decode_token(page_token, filter_text)
        jobs, next_cursor = await listing.list_page(
            self._store, tenant, page_size=size, cursor=cursor, where=where
        )
        token = "" if next_cursor is None else listing.encode_token(next_cursor, filter_text)
        return jobs, token

    async def cancel(self, tenant: str, name: str) -> Job:
        job_id = job_id_of(name)
        now = self._clock()
        job = await self._store.update(
            tenant, job_id, lambda j: None if j.deleted else lifecycle.cancel_requested(j, now)
        )
        if job is None or job.deleted:
            raise NotFound(f"{name} not found")
        if job.state == JobState.CANCELLING:
            await self._schedule.due_in(tenant, job_id, 0)
        elif job.state.terminal:
            await self._schedule.remove(tenant, job_id)
        return job

    async def delete(self, tenant: str, name: str) -> None:
        job_id = job_id_of(name)
        if await self._store.get(tenant, job_id) is None:
            raise NotFound(f"{name} not found")
        await self._store.update(tenant, job_id, lifecycle.delete_requested)
        await self._schedule.due_in(tenant, job_id, 0)


def estimated_total_steps(job: Job) -> int:
    """ceil(examples * epochs / batch size), with the upstream's defaults (5 epochs, batch 4)."""
    epochs = job.hyperparameters.epoch_count or DEFAULT_EPOCHS
    batch = job.hyperparameters.batch_size or DEFAULT_BATCH_SIZE
    return math.ceil(job.example_count * epochs / batch)


def job_id_of(name: str) -> str:
    """The id in `tuningJobs/{id}`; INVALID_ARGUMENT for anything else."""
    job_id = name.removeprefix(JOB_NAME_PREFIX)
    if not name.startswith(JOB_NAME_PREFIX) or not job_id or "/" in job_id:
        raise InvalidArgument(
            f"invalid name {echo(name)}", [FieldViolation("name", "must be tuningJobs/{id}")]
        )
    return job_id
