"""UploadDataset and GetDataset: receive, validate (service.dataset_parsing), store per tenant."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from core.domain.job import encode_pairs, random_id
from core.errors import FieldViolation, InvalidArgument, NotFound, echo
from core.runtime.clock import Clock
from core.runtime.settings import Settings
from service.dataset_parsing import DatasetFormat, DatasetOptions, parse_dataset
from service.dataset_store import DATASET_NAME_PREFIX, DatasetRecord, DatasetStore
from tuning.v1 import dataset_pb2, tuning_service_pb2

DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
DEFAULT_INPUT_FIELD = "text_input"
DEFAULT_OUTPUT_FIELD = "output"


class DatasetsApi:
    """The dataset RPCs' behaviour."""

    def __init__(self, store: DatasetStore, settings: Settings, clock: Clock) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    async def upload(
        self, tenant: str, parts: AsyncIterator[tuning_service_pb2.UploadDatasetRequest]
    ) -> DatasetRecord:
        """Read the metadata, then the chunks; refuse the whole dataset on any problem.

        A refusal first reads what the client is still sending (up to a bound): a
        client-streaming call that the server ends early makes the client's next send
        fail, and gRPC then reports that local failure (INTERNAL) instead of our answer.
        """
        try:
            spec = await _first_part(parts)
            fmt = _format(spec)
            options = self._options(spec)
            raw = await _read_content(parts, self._settings.dataset_max_bytes)
        except InvalidArgument:
            await _drain(parts, DRAIN_LIMIT_BYTES)
            raise
        # Parsing 4 MB of bad lines takes seconds of CPU: keep it off the event loop.
        report = await asyncio.to_thread(parse_dataset, raw, fmt, options)
        if not report.ok:
            count = len(report.violations)
            first = report.violations[0]
            raise InvalidArgument(
                f"dataset refused ({count} problem{'s' * (count > 1)}): "
                f"{first.field}: {first.description}",
                list(report.violations),
            )
        record = DatasetRecord(
            id=random_id("d"),
            tenant=tenant,
            display_name=spec.display_name,
            format=fmt,
            input_field=options.input_field,
            output_field=options.output_field,
            stats=report.stats,
            warnings=report.warnings,
            create_time=self._clock(),
        )
        examples = await asyncio.to_thread(encode_pairs, report.inputs, report.outputs)
        await self._store.save(record, examples)
        return record

    def _options(self, spec: dataset_pb2.Dataset) -> DatasetOptions:
        return DatasetOptions(
            input_field=spec.input_field or DEFAULT_INPUT_FIELD,
            output_field=spec.output_field or DEFAULT_OUTPUT_FIELD,
            max_bytes=self._settings.dataset_max_bytes,
            min_examples=self._settings.min_examples,
            max_input_chars=self._settings.max_input_chars,
            max_output_chars=self._settings.max_output_chars,
            max_reported=self._settings.max_reported_violations,
        )

    async def get(self, tenant: str, name: str) -> DatasetRecord:
        record = await self._store.get(tenant, dataset_id_of(name, "name"))
        if record is None:
            raise NotFound(f"{name} not found")
        return record


def dataset_id_of(name: str, field: str) -> str:
    """The id in `datasets/{id}`; INVALID_ARGUMENT naming `field` otherwise."""
    dataset_id = name.removeprefix(DATASET_NAME_PREFIX)
    if not name.startswith(DATASET_NAME_PREFIX) or not dataset_id or "/" in dataset_id:
        raise InvalidArgument(
            f"invalid dataset name {echo(name)}", [FieldViolation(field, "must be datasets/{id}")]
        )
    return dataset_id


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
    with contextlib.suppress(InvalidArgument):
        async for part in parts:
            seen += part.ByteSize()
            if seen > limit_bytes:
                return


async def _read_content(
    parts: AsyncIterator[tuning_service_pb2.UploadDatasetRequest], max_bytes: int
) -> bytes:
    """The chunks joined, copied once; stops reading as soon as the content is too large."""
    chunks: list[bytes] = []
    size_bytes = 0
    async for part in parts:
        if part.WhichOneof("part") != "chunk":
            raise InvalidArgument(
                "only the first message may carry `dataset`",
                [FieldViolation("dataset", "repeated after the first message")],
            )
        chunks.append(part.chunk)
        size_bytes += len(part.chunk)
        if size_bytes > max_bytes:
            raise InvalidArgument(
                f"the dataset is larger than {max_bytes} bytes",
                [FieldViolation("content", f"more than {max_bytes} bytes; split the dataset")],
            )
    return b"".join(chunks)
