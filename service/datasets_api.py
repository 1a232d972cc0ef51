"""The dataset RPCs: UploadDataset (receive, validate with service.dataset_parsing, store
per tenant within its storage quotas), GetDataset, ListDatasets and DeleteDataset."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from core.dataset_files import DatasetFiles, staged_file
from core.domain.job import DATASET_NAME_PREFIX, TrainingFile, id_shape, random_id
from core.domain.quotas import QuotasFor, TenantQuotas
from core.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Reason,
    ResourceExhausted,
)
from core.redis.storage import datasets_exceeded, stored_bytes_exceeded
from core.runtime.clock import Clock
from core.runtime.settings import Settings
from service.dataset_checker import DatasetChecker
from service.dataset_parsing import DatasetFormat, DatasetOptions, DatasetReport
from service.dataset_store import DatasetRecord, DatasetStore
from service.dataset_stream import check_block
from service.dataset_upload import stream_jsonl
from service.listing import PageTokens, page_size_of
from service.upload_bounds import UploadSlots, paced
from service.validation import resource_id
from tuning.v1 import dataset_pb2, tuning_service_pb2

DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
REFUSED_IDLE_S = 0.5
"""The longest pause of a client's sending that a refused upload waits out before answering."""
DEFAULT_INPUT_FIELD = "text_input"
DEFAULT_OUTPUT_FIELD = "output"
DATASET_ID_PREFIX = "d"
DATASET_ID_SHAPE = id_shape(DATASET_ID_PREFIX)
MAX_DATASET_PAGE_SIZE = 100
"""Most datasets in one ListDatasets page: each carries up to 100 warnings, and a page must
stay well under the largest gRPC message."""
DATASETS_LISTING = "\x00datasets"
"""What ListDatasets' page tokens are signed for in place of a filter: no ListTuningJobs
filter can be this, so a token of one listing is refused by the other."""


class DatasetsApi:
    """The dataset RPCs' behaviour; `files` keeps the datasets' examples (None: no
    dataset storage is configured, and uploads are refused)."""

    def __init__(  # noqa: PLR0917 (the API's collaborators, each one of a kind)
        self,
        store: DatasetStore,
        settings: Settings,
        clock: Clock,
        checker: DatasetChecker,
        page_tokens: PageTokens,
        quotas_for: QuotasFor,
        files: DatasetFiles | None,
    ) -> None:
        self._store = store
        self._files = files
        self._settings = settings
        self._clock = clock
        self._checker = checker
        self._page_tokens = page_tokens
        self._quotas_for = quotas_for
        self.slots = UploadSlots(
            per_tenant=settings.tenant_max_uploads, per_replica=settings.max_uploads
        )

    async def upload(
        self, tenant: str, parts: AsyncIterator[tuning_service_pb2.UploadDatasetRequest]
    ) -> DatasetRecord:
        """Read the metadata, then the chunks; refuse the whole dataset on any problem.

        The stream takes one of the tenant's upload slots before anything is read, and
        holds it until the answer (service.upload_bounds); it may pause at most
        `upload_idle_timeout_s` between messages and take `upload_max_s` in all.
        A refusal first reads what the client is still sending (up to a bound): a
        client-streaming call that the server ends early makes the client's next send
        fail, and gRPC then reports that local failure (INTERNAL) instead of our answer.
        A stream refused a slot is read only while the client keeps sending, pausing at
        most REFUSED_IDLE_S, so one that goes quiet is answered at once.
        """
        total_s = self._settings.upload_max_s
        try:
            self.slots.check(tenant)
        except ResourceExhausted:
            await _drain(paced(parts, idle_s=REFUSED_IDLE_S, total_s=total_s), DRAIN_LIMIT_BYTES)
            raise
        with self.slots.hold(tenant):  # nothing ran since the check: one event loop
            idle_s = self._settings.upload_idle_timeout_s
            return await self._upload(tenant, paced(parts, idle_s=idle_s, total_s=total_s))

    async def _upload(
        self, tenant: str, parts: AsyncIterator[tuning_service_pb2.UploadDatasetRequest]
    ) -> DatasetRecord:
        try:
            spec = await _first_part(parts)
            fmt = _format(spec)
            options = self._options(spec)
        except InvalidArgument:
            await _drain(parts, DRAIN_LIMIT_BYTES)
            raise
        files = self._files_or_refuse()
        quotas = self._quotas_for(tenant)
        await self._refuse_when_full(tenant, quotas)
        dataset_id = random_id(DATASET_ID_PREFIX)
        try:
            report, file = await self._receive(tenant, dataset_id, parts, fmt, options, files)
        except InvalidArgument:
            await _drain(parts, DRAIN_LIMIT_BYTES)
            raise
        if file is None or not report.ok:
            await _drain(parts, DRAIN_LIMIT_BYTES)
            raise _refused(report)
        record = DatasetRecord(
            id=dataset_id,
            tenant=tenant,
            display_name=spec.display_name,
            format=fmt,
            input_field=options.input_field,
            output_field=options.output_field,
            stats=report.stats,
            warnings=report.warnings,
            create_time=self._clock(),
        )
        await self._store.save(record, file, quotas)
        return record

    async def _receive(  # noqa: PLR0917 (one upload's parts)
        self,
        tenant: str,
        dataset_id: str,
        parts: AsyncIterator[tuning_service_pb2.UploadDatasetRequest],
        fmt: DatasetFormat,
        options: DatasetOptions,
        files: DatasetFiles,
    ) -> tuple[DatasetReport, TrainingFile | None]:
        """The dataset's report and, if it is valid, its file, written as it is checked.

        JSONL streams (service.dataset_upload), up to `dataset_stream_max_bytes`; CSV and
        JSON are parsed whole, so they are read whole first, up to `dataset_max_bytes`,
        and their file is written as JSONL of `text_input` and `output`.
        """
        if fmt == DatasetFormat.JSONL:
            streamed = await stream_jsonl(
                _chunks(parts),
                options=options,
                max_bytes=self._settings.dataset_stream_max_bytes,
                check=lambda block, keep: self._checker.run(
                    tenant, check_block, block, options, keep
                ),
                write=lambda blocks: files.write_dataset(tenant, dataset_id, blocks),
            )
            if streamed.file is None:
                return streamed.report, None
            fields = (options.input_field, options.output_field)
            return streamed.report, staged_file(streamed.file, *fields)
        raw = await _read_content(parts, self._settings.dataset_max_bytes)
        # Parsing 4 MB of bad lines takes a second of CPU: it runs in another process.
        checked = await self._checker.check(tenant, raw, fmt, options)
        if not checked.report.ok:
            return checked.report, None
        staged = await files.write_dataset(tenant, dataset_id, [checked.examples])
        return checked.report, staged_file(staged)

    def _files_or_refuse(self) -> DatasetFiles:
        if self._files is None:
            raise FailedPrecondition(
                "this platform keeps no uploaded datasets (TUNING_DATASET_STORAGE is not "
                "set); send the examples inline in CreateTuningJob",
                reason=Reason.DATASET_STORAGE_OFF,
            )
        return self._files

    async def _refuse_when_full(self, tenant: str, quotas: TenantQuotas) -> None:
        """Refuse before the heavy check when no dataset could be stored; the store's
        save checks again, atomically, with the examples' real size."""
        usage = await self._store.usage(tenant)
        if 0 < quotas.max_datasets <= usage.datasets:
            raise datasets_exceeded(tenant, quotas)
        if 0 < quotas.max_stored_bytes <= usage.stored_bytes:
            raise stored_bytes_exceeded(tenant, quotas)

    def _options(self, spec: dataset_pb2.Dataset) -> DatasetOptions:
        return DatasetOptions(
            input_field=spec.input_field or DEFAULT_INPUT_FIELD,
            output_field=spec.output_field or DEFAULT_OUTPUT_FIELD,
            max_bytes=self._settings.dataset_max_bytes,
            min_examples=self._settings.min_examples,
            max_examples=self._settings.max_examples,
            max_input_chars=self._settings.max_input_chars,
            max_output_chars=self._settings.max_output_chars,
            max_reported=self._settings.max_reported_violations,
        )

    async def get(self, tenant: str, name: str) -> DatasetRecord:
        record = await self._store.get(tenant, dataset_id_of(name, "name"))
        if record is None:
            raise NotFound(f"{name} not found")
        return record

    async def delete(self, tenant: str, name: str) -> None:
        """Delete the tenant's dataset and free its quota; NOT_FOUND if it has none such.

        Jobs created from it keep their own copy of the examples."""
        if not await self._store.delete(tenant, dataset_id_of(name, "name")):
            raise NotFound(f"{name} not found")

    async def list(
        self, tenant: str, *, page_size: int, page_token: str
    ) -> tuple[list[DatasetRecord], str]:
        """One page of the tenant's datasets, newest first, and the token of the next."""
        size = page_size_of(page_size, max_size=MAX_DATASET_PAGE_SIZE)
        cursor = await self._page_tokens.decode(page_token, tenant, DATASETS_LISTING)
        batch = await self._store.page(tenant, before_seq=cursor, count=size + 1)
        more = len(batch) > size
        page = batch[:size]
        records = [record for _, record in page if record is not None]
        if not more:
            return records, ""
        return records, await self._page_tokens.encode(tenant, DATASETS_LISTING, page[-1][0])


def dataset_id_of(name: str, field: str) -> str:
    """The id in `datasets/{id}`; INVALID_ARGUMENT naming `field`, before any lookup, else."""
    return resource_id(name, prefix=DATASET_NAME_PREFIX, shape=DATASET_ID_SHAPE, field=field)


async def _first_part(
    parts: AsyncIterator[tuning_service_pb2.UploadDatasetRequest],
) -> dataset_pb2.Dataset:
    first = await anext(parts, None)
    if first is None or first.WhichOneof("part") != "dataset":
        raise InvalidArgument(
            "the first message must carry `dataset` (format and field names), "
            "the following ones `chunk`",
            [FieldViolation("dataset", "required in the first message")],
        )
    return first.dataset


def _format(spec: dataset_pb2.Dataset) -> DatasetFormat:
    # proto3 enums are open: a number this server does not know arrives as is.
    known = spec.format in dataset_pb2.Dataset.Format.values()
    if not known or spec.format == dataset_pb2.Dataset.FORMAT_UNSPECIFIED:
        raise InvalidArgument(
            "dataset.format is required",
            [FieldViolation("dataset.format", "required: JSONL, CSV or JSON")],
        )
    return DatasetFormat(dataset_pb2.Dataset.Format.Name(spec.format))


async def _drain(parts: AsyncIterator[Any], limit_bytes: int) -> None:
    """Read and drop the rest of a refused upload, up to `limit_bytes`."""
    seen = 0
    with contextlib.suppress(InvalidArgument, DeadlineExceeded):
        async for part in parts:
            seen += part.ByteSize()
            if seen > limit_bytes:
                return


def _refused(report: DatasetReport) -> InvalidArgument:
    count = len(report.violations)
    first = report.violations[0]
    return InvalidArgument(
        f"dataset refused ({count} problem{'s' * (count > 1)}): {first.field}: {first.description}",
        list(report.violations),
    )


async def _chunks(
    parts: AsyncIterator[tuning_service_pb2.UploadDatasetRequest],
) -> AsyncIterator[bytes]:
    """The chunks of the messages after the first; INVALID_ARGUMENT if one is not a chunk."""
    async for part in parts:
        if part.WhichOneof("part") != "chunk":
            raise _dataset_repeated()
        yield part.chunk


def _dataset_repeated() -> InvalidArgument:
    return InvalidArgument(
        "only the first message may carry `dataset`",
        [FieldViolation("dataset", "repeated after the first message")],
    )


async def _read_content(
    parts: AsyncIterator[tuning_service_pb2.UploadDatasetRequest], max_bytes: int
) -> bytes:
    """The chunks joined, copied once; stops reading as soon as the content is too large."""
    chunks: list[bytes] = []
    size_bytes = 0
    async for part in parts:
        if part.WhichOneof("part") != "chunk":
            raise _dataset_repeated()
        size_bytes += len(part.chunk)
        if size_bytes > max_bytes:  # checked before the chunk is kept
            raise InvalidArgument(
                f"the dataset is larger than {max_bytes} bytes",
                [FieldViolation("content", f"more than {max_bytes} bytes; split the dataset")],
            )
        chunks.append(part.chunk)
    return b"".join(chunks)
