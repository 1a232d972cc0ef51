"""What each RPC does, as plain async functions of a tenant and a request.

Reads come from Redis only; nothing here calls the upstream. Writes go through the
job store's compare-and-set and the state machine in core.domain.lifecycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from core.dataset_files import DatasetFiles
from core.domain import lifecycle
from core.domain.catalogue import Retirement
from core.domain.job import (
    JOB_ID_SHAPE,
    JOB_NAME_PREFIX,
    Job,
    Progress,
    Sampling,
    TrainingFile,
    new_job_id,
)
from core.domain.providers import ProviderChoice, ProviderKind, ProviderOf
from core.domain.quotas import QuotasFor, TenantQuotas
from core.domain.states import JobState
from core.domain.usage import DEFAULT_EPOCHS
from core.errors import (
    AlreadyExists,
    CreateQuotaSpent,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Reason,
    echo,
)
from core.redis.admission import Admission
from core.redis.aliases import AliasStore
from core.redis.job_store import JobStore
from core.redis.project_slots import ProjectSlots
from core.redis.schedule import Schedule, member
from core.redis.storage import stored_bytes_exceeded
from core.runtime.clock import Clock
from core.runtime.settings import Settings
from service import listing
from service.convert import job_from_request
from service.create_preparation import (
    CreateCall,
    PreparedCreate,
    is_small,
    prepare_create,
    prepare_here,
    unpacked,
)
from service.dataset_checker import DatasetChecker
from service.dataset_store import DatasetStore
from service.datasets_api import dataset_id_of
from service.validation import (
    MAX_VALIDATION_EXAMPLES,
    REQUEST_ID,
    check_not_retired,
    check_texts,
    resource_id,
)

_T = TypeVar("_T")
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
        *,
        page_tokens: listing.PageTokens,
        checker: DatasetChecker,
        provider_of: ProviderOf,
        files: DatasetFiles | None = None,
        slots: ProjectSlots | None = None,
        aliases: AliasStore | None = None,
    ):
        self._aliases = aliases
        self._slots = slots
        self._files = files
        self._checker = checker
        self._provider_of = provider_of
        self._store = store
        self._schedule = schedule
        self._datasets = datasets
        self._admission = admission
        self._quotas_for = quotas_for
        self._settings = settings
        self._clock = clock
        self._page_tokens = page_tokens
        self._catalogue = settings.catalogue()

    async def create(
        self,
        tenant: str,
        call: CreateCall,
        *,
        source_job: str = "",
        facade_id: str = "",
        sampling: Sampling | None = None,
    ) -> tuple[Job, int]:
        """Validate, store and queue; a repeated request_id answers the job it made.

        Returns the job and its queue position. One Redis round trip spends the tenant's
        create quota and stores the job. A second puts the tenant in the admission ring,
        but only when this job made its queue non-empty (position 1): a tenant with jobs
        already queued is in the ring, or is being put back by whoever queued them or by
        the round that is checking its queue (core.redis.admission). A retry of a QUEUED job
        joins too, which repairs a first attempt that died before joining.

        Quotas come before the heavy work (parsing, validation, encoding, copying a
        dataset's file): `_admitted` refuses at once what the quota would refuse anyway, on
        the request's head alone, for a large request and before a dataset's copy. A small
        request of inline examples has no heavy work, and that peek would be its second
        Redis round trip: the CREATE script's own refusal serves. The heavy work runs off
        the event loop for a large request (service.create_preparation).

        The job is validated for, and keeps, the tenant's provider as the tenants file
        says now: a later change of the file moves only jobs created after it. A re-tune
        (service.retune) comes this way too, naming the job it was made from (`source_job`).
        So does a create through the Gemini API facade, naming the `tuned_model_id` the job
        answers to there (`facade_id`): a repeat of that is ALREADY_EXISTS, as the Gemini
        API answers a second create of one id, not the job the first one made; and the
        tuned model's default sampling, if the create gave any (`sampling`).
        """
        quotas = self._quotas_for(tenant)
        # A small create of inline examples costs less than a peek at its quota: the CREATE
        # script refuses it all the same. The others peek first (`_admitted`).
        peeked = call.validate_only or not is_small(call, self._settings)
        if peeked:
            await self._admitted(tenant, call, quotas)
        provider = self._provider_of(tenant)
        prepared = await self._prepared(tenant, call, provider)
        request = prepared.request
        now = self._clock()
        check_not_retired(request.tuning_job.base_model, self._catalogue, now)
        job = job_from_request(
            prepared,
            tenant=tenant,
            job_id=new_job_id(tenant, request.request_id),
            now=now,
            provider=provider,
        )
        if source_job:
            job = job.replace(source_job=source_job)
        if facade_id:
            job = job.replace(facade_id=facade_id)
        if sampling is not None:
            job = job.replace(sampling=sampling)
        job, content, characters = await self._training_data(job, prepared)
        await self._check_validation_data(job)
        if request.validate_only:
            await self._check_quotas(tenant, quotas, len(content))
            await self._store.check_training_budget(job, quotas, training_characters=characters)
            return job.replace(progress=Progress(total_steps=estimated_total_steps(job))), 0
        if not peeked and job.training_file is not None:  # a copy of its dataset to make
            await self._admitted(tenant, call, quotas)
        copy = await self._own_copy(job, request.request_id)
        job = job if copy is None else job.replace(training_file=copy)
        try:
            stored, created, position = await self._store.create(
                job, content, quotas=quotas, training_characters=characters
            )
        except BaseException:
            await self._discard(job.tenant, copy)
            raise
        if not created:  # the job was there already, with its own copy
            await self._discard(job.tenant, copy)
            if facade_id and not stored.deleted:
                raise AlreadyExists(f"{stored.name} exists already")
        if created:  # retention counts from a dataset's last use
            await self._touch_datasets(job)
        if stored.deleted:
            raise AlreadyExists(
                f"request_id {echo(request.request_id)} made {stored.name}, which was deleted; "
                "use a new request_id",
                reason=Reason.REQUEST_ID_REUSED,
            )
        if (created and position == 1) or (not created and stored.state == JobState.QUEUED):
            await self._admission.add_to_ring(tenant)
        return stored, position

    async def _prepared(
        self, tenant: str, call: CreateCall, provider: ProviderChoice
    ) -> PreparedCreate:
        if is_small(call, self._settings):
            return unpacked(prepare_here(call.raw, self._settings, provider))
        return unpacked(
            await self._checker.run(tenant, prepare_create, call.raw, self._settings, provider)
        )

    async def _admitted(self, tenant: str, call: CreateCall, quotas: TenantQuotas) -> None:
        """Refuse a create its quota would refuse, before it costs any work.

        A `validate_only` call spends a token of its own bucket (JobStore.spend_validate_quota)
        and nothing of the create quota. A create only peeks at its quota here: the CREATE
        script spends it, atomically with storing the job; a peek that finds none refuses at
        once, unless the request_id already made its job (a retry, which costs nothing).
        """
        if call.validate_only:
            await self._store.spend_validate_quota(tenant, quotas)
            return
        try:
            await self._store.check_create_quota(tenant, quotas)
        except CreateQuotaSpent:
            if not await self._made_its_job(tenant, call.request_id):
                raise

    async def _made_its_job(self, tenant: str, request_id: str) -> bool:
        if not REQUEST_ID.fullmatch(request_id):  # none, or one no job can have been made by
            return False
        return await self._store.read(tenant, new_job_id(tenant, request_id)) is not None

    async def _check_quotas(self, tenant: str, quotas: TenantQuotas, size_bytes: int) -> None:
        """What `create` would refuse for its quotas, spending nothing (validate_only)."""
        await self._store.check_create_quota(tenant, quotas)
        usage = await self._datasets.usage(tenant)
        if 0 < quotas.max_stored_bytes < usage.stored_bytes + size_bytes:
            raise stored_bytes_exceeded(tenant, quotas)

    def now(self) -> float:
        """The API's clock (seconds since the epoch): what read-time fields are as of."""
        return self._clock()

    def retirement(self, job: Job) -> Retirement | None:
        """When the job's base model retires, and whether it is retiring now."""
        return self._catalogue.retirement(job.base_model, self._clock())

    async def queue_position(self, job: Job) -> int:
        """Where a QUEUED job waits: in its tenant's queue, or once admitted, in the lines
        of the Vertex AI projects it waits for (its best place); 0 when it is not waiting."""
        if job.state != JobState.QUEUED:
            return 0
        if not job.waiting_for or self._slots is None:
            return await self._admission.position(job.tenant, job.id)
        places = [
            await self._slots.position(p, member(job.tenant, job.id)) for p in job.waiting_for
        ]
        return min((p for p in places if p), default=0)

    async def _training_data(self, job: Job, prepared: PreparedCreate) -> tuple[Job, bytes, int]:
        """The examples to store with the job: inline ones; or, for a job naming a
        dataset, none, and the dataset's file (copied for the job by `_own_copy`). With
        them, their characters (inputs and outputs), which its usage estimate counts."""
        if not job.dataset:
            return job, prepared.examples, prepared.characters
        dataset_id = dataset_id_of(job.dataset, "tuning_job.dataset")
        record = await self._datasets.get(job.tenant, dataset_id)
        if record is None or record.file is None:
            raise _dataset_not_found(job.dataset, "tuning_job.dataset")
        self._check_inline_size(job, record.file)
        characters = record.stats.input_chars + record.stats.output_chars
        job = job.replace(example_count=record.stats.examples, training_file=record.file)
        return job, b"", characters

    def _check_inline_size(self, job: Job, file: TrainingFile) -> None:
        """The Gemini API takes a job's examples inline in one request: a larger dataset
        than `dataset_max_bytes` is one it cannot tune on."""
        limit = self._settings.dataset_max_bytes
        if job.provider.kind != ProviderKind.GEMINI_API or file.size <= limit:
            return
        raise InvalidArgument(
            f"{job.dataset} is too large for the Gemini API",
            [
                FieldViolation(
                    "tuning_job.dataset",
                    f"is {file.size} bytes; the Gemini API provider takes at most {limit} "
                    "bytes of examples (its examples go inline); Vertex AI takes up to 1 GB",
                )
            ],
        )

    async def _own_copy(self, job: Job, request_id: str) -> TrainingFile | None:
        """The job's own copy of its dataset's file, so that a deleted dataset never takes
        a queued job's data; None for a job of inline examples, or one that exists."""
        if job.training_file is None or await self._made_its_job(job.tenant, request_id):
            return None
        if self._files is None:
            raise FailedPrecondition(
                "this platform keeps no uploaded datasets", reason=Reason.DATASET_STORAGE_OFF
            )
        return await self._files.copy_for_job(job.tenant, job.id, job.training_file)

    async def _discard(self, tenant: str, copy: TrainingFile | None) -> None:
        """A copy `_own_copy` made that is not the job's after all: workers delete it."""
        if copy is not None:
            await self._datasets.discard_file(tenant, copy.uri)

    async def _check_validation_data(self, job: Job) -> None:
        """The job's validation dataset, if it names one, is the tenant's and small enough.

        Resolved as `dataset` is; only its name is kept with the job (the worker reads the
        dataset when it submits the job)."""
        if not job.validation_dataset:
            return
        field = "tuning_job.validation_dataset"
        dataset_id = dataset_id_of(job.validation_dataset, field)
        record = await self._datasets.get(job.tenant, dataset_id)
        if record is None:
            raise _dataset_not_found(job.validation_dataset, field)
        if record.stats.examples > MAX_VALIDATION_EXAMPLES:
            raise InvalidArgument(
                f"{job.validation_dataset} is too large to validate on",
                [
                    FieldViolation(
                        field,
                        f"has {record.stats.examples} examples; "
                        f"at most {MAX_VALIDATION_EXAMPLES} are accepted",
                    )
                ],
            )

    async def _touch_datasets(self, job: Job) -> None:
        for name, field in (
            (job.dataset, "tuning_job.dataset"),
            (job.validation_dataset, "tuning_job.validation_dataset"),
        ):
            if name:
                await self._datasets.touch(job.tenant, dataset_id_of(name, field))

    async def list_where(
        self,
        tenant: str,
        where: listing.JobFilter,
        *,
        page_size: int,
        page_token: str,
        token_scope: str,
    ) -> tuple[list[Job], str]:
        """A page of the tenant's jobs that `where` matches, and the token of the next;
        tokens are good only for the same `token_scope` (the filter as the caller wrote it,
        told apart from another surface's filter of the same text)."""
        size = listing.page_size_of(page_size)
        cursor = await self._page_tokens.decode(page_token, tenant, token_scope)
        jobs, next_cursor = await listing.list_page(
            self._store, tenant, page_size=size, cursor=cursor, where=where
        )
        if next_cursor is None:
            return jobs, ""
        return jobs, await self._page_tokens.encode(tenant, token_scope, next_cursor)

    async def list(
        self, tenant: str, *, page_size: int, page_token: str, filter_text: str
    ) -> tuple[list[Job], str]:
        where = listing.parse_filter(filter_text, max_chars=self._settings.max_filter_chars)
        if where.retiring is not None:
            where = where.with_retiring(self._catalogue.retiring_models(self._clock()))
        return await self.list_where(
            tenant, where, page_size=page_size, page_token=page_token, token_scope=filter_text
        )

    async def peek_create_quota(self, tenant: str, request_id: str) -> None:
        """Refuse at once a create (of `request_id`) its quota would refuse, spending
        nothing: for a caller with heavy work of its own to do before `create` (the Gemini
        API facade's translation of a large request), so that the quota comes first."""
        call = CreateCall(b"", request_id, validate_only=False)
        await self._admitted(tenant, call, self._quotas_for(tenant))

    async def off_loop(
        self, tenant: str, size_bytes: int, work: Callable[..., _T], *args: Any
    ) -> _T:
        """`work(*args)` where a create's heavy work runs (service.create_preparation): on
        the event loop for a request of up to `grpc_small_request_max_bytes`, else in the
        checking processes, within the tenant's turns there."""
        if size_bytes <= self._settings.grpc_small_request_max_bytes:
            return work(*args)
        return await self._checker.run(tenant, work, *args)

    def provider_of(self, tenant: str) -> ProviderChoice:
        """The tenant's provider as the tenants file says now (what a create validates for)."""
        return self._provider_of(tenant)

    async def describe(
        self,
        tenant: str,
        name: str,
        *,
        display_name: str | None,
        description: str | None,
        path: str = "",
    ) -> Job:
        """Change the job's display name and description (None: leave it), checked as a
        create checks them (service.validation.check_texts; violations under `path`)."""
        job_id = job_id_of(name)
        check_texts(display_name, description, path)
        now = self._clock()

        def change(job: Job) -> Job | None:
            if job.deleted:
                return None
            return job.replace(
                display_name=job.display_name if display_name is None else display_name,
                description=job.description if description is None else description,
                update_time=now,
            )

        job = await self._store.update(tenant, job_id, change)
        if job is None or job.deleted:
            raise NotFound(f"{name} not found")
        return job

    async def cancel(self, tenant: str, name: str) -> Job:
        job_id = job_id_of(name)
        now = self._clock()
        job = await self._store.update(
            tenant, job_id, lambda j: None if j.deleted else lifecycle.cancel_requested(j, now)
        )
        if job is None or job.deleted:
            raise NotFound(f"{name} not found")
        if job.state == JobState.CANCELLING or (job.state.terminal and job.waiting_for):
            # A job cancelled in a project's line: a worker's visit gives its places back
            # (worker.steps), so that those behind it move up at once.
            await self._schedule.due_in(tenant, job_id, 0)
        elif job.state.terminal:
            await self._schedule.remove(tenant, job_id)
        return job

    async def delete(self, tenant: str, name: str) -> None:
        """Delete the job (its worker cleans up upstream); FAILED_PRECONDITION while one of
        the tenant's aliases points at it, so that no alias is left answering NOT_FOUND.

        The check and the delete are two steps: an alias moved onto the job in between
        (its target checked as SUCCEEDED a moment before) is not seen; such an alias then
        answers NOT_FOUND, as a move to a missing job would be refused."""
        job_id = job_id_of(name)
        if await self._store.get(tenant, job_id) is None:
            raise NotFound(f"{name} not found")
        if self._aliases is not None and (held := await self._aliases.pointing_at(tenant, name)):
            raise FailedPrecondition(
                f"{name} is the target of {', '.join(held)}: move or delete "
                f"{'that alias' if len(held) == 1 else 'those aliases'} first",
                reason=Reason.ALIAS_TARGET,
            )
        await self._store.update(tenant, job_id, lifecycle.delete_requested)
        await self._schedule.due_in(tenant, job_id, 0)


def estimated_total_steps(job: Job) -> int:
    """ceil(examples * epochs / batch size), with the upstream's defaults (5 epochs, batch 4)."""
    epochs = job.hyperparameters.epoch_count or DEFAULT_EPOCHS
    batch = job.hyperparameters.batch_size or DEFAULT_BATCH_SIZE
    return math.ceil(job.example_count * epochs / batch)


def _dataset_not_found(name: str, field: str) -> InvalidArgument:
    return InvalidArgument(
        f"{name} not found", [FieldViolation(field, "not found; upload it with UploadDataset")]
    )


def job_id_of(name: str) -> str:
    """The id in `tuningJobs/{id}`; INVALID_ARGUMENT, before any lookup, for anything else."""
    return resource_id(name, prefix=JOB_NAME_PREFIX, shape=JOB_ID_SHAPE, field="name")
