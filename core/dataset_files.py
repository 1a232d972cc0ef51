"""Datasets' examples as files in the platform's bucket (`TUNING_DATASET_STORAGE`).

An uploaded dataset is one JSONL object, written once as it streams in (service.datasets_api)
and never changed: each line an example whose input and output are under the dataset's
`input_field` and `output_field` (blank lines allowed). Redis keeps only the record and the
file's URI. A job created from a dataset gets its own copy, made server-side (a rewrite), so
that deleting the dataset never takes a queued job's data; the worker reads the copy when it
submits the job, then discards it.

Names, all under the configured prefix, in the tenant's own folder:
`{prefix}/{tenant}/datasets/{dataset_id}.jsonl` and `{prefix}/{tenant}/jobs/{job_id}.jsonl`.
Files nothing needs any more are not deleted where they stop being needed (a Redis script
can't reach Cloud Storage): their URIs join the tenant's discarded files in the same
script, and workers delete them (worker.retention), so no failure leaves a file behind.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass

import aiohttp
import httpx
import orjson

from core.cloud_storage import GS_PREFIX, StagedObject, StorageClient
from core.domain.job import Example, TrainingFile
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.security.platform_identity import platform_token_source
from core.security.token_source import TokenSource
from core.upstream_http import UNFENCED

EXAMPLES_PER_BATCH = 1000


@dataclass(frozen=True)
class DatasetLocation:
    """`gs://bucket/prefix`: where the platform keeps datasets' files."""

    bucket: str
    prefix: str

    @classmethod
    def from_uri(cls, uri: str) -> DatasetLocation:
        """ValueError unless `uri` is `gs://bucket` or `gs://bucket/prefix`."""
        bucket, _, prefix = uri.removeprefix(GS_PREFIX).partition("/")
        if not uri.startswith(GS_PREFIX) or not bucket:
            raise ValueError(f"TUNING_DATASET_STORAGE must be gs://bucket/prefix, not {uri!r}")
        return cls(bucket, prefix.strip("/"))

    def dataset_file(self, tenant: str, dataset_id: str) -> str:
        return self._name(tenant, "datasets", dataset_id)

    def job_file(self, tenant: str, job_id: str) -> str:
        return self._name(tenant, "jobs", job_id)

    def _name(self, tenant: str, kind: str, resource_id: str) -> str:
        path = f"{tenant}/{kind}/{resource_id}.jsonl"
        return f"{self.prefix}/{path}" if self.prefix else path


def encode_jsonl(inputs: Iterable[str], outputs: Iterable[str]) -> bytes:
    """Examples as a file of the default keys (`TrainingFile`'s `text_input`, `output`)."""
    lines = (
        orjson.dumps({"text_input": i, "output": o}) for i, o in zip(inputs, outputs, strict=True)
    )
    return b"\n".join(lines) + b"\n"


class DatasetFiles:
    """The platform's bucket of datasets, read and written with the platform's identity."""

    def __init__(self, storage: StorageClient, auth: TokenSource, location: DatasetLocation):
        self._storage = storage
        self._auth = auth
        self.location = location

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        http: aiohttp.ClientSession,
        token_http: httpx.Client,
        metrics: Metrics | None = None,
    ) -> DatasetFiles | None:
        """The bucket of `TUNING_DATASET_STORAGE` (None if it is not set), reached as the
        platform. The files are the platform's own: no tenant's upstream budget and no
        job's lease governs reading or writing them, so nothing limits or fences it."""
        if not settings.dataset_storage:
            return None
        storage = StorageClient(
            http, base_url=settings.storage_base_url, metrics=metrics, fence=UNFENCED
        )
        auth = platform_token_source(
            settings.platform_credentials_file, settings.token_uri, token_http
        )
        return cls(storage, auth, DatasetLocation.from_uri(settings.dataset_storage))

    async def write_dataset(
        self, tenant: str, dataset_id: str, chunks: Iterable[bytes] | AsyncIterable[bytes]
    ) -> StagedObject:
        """A new dataset's file from `chunks` (create-only; nothing is written if `chunks`
        raises)."""
        name = self.location.dataset_file(tenant, dataset_id)
        return await self._storage.upload(self._auth, self.location.bucket, name, chunks)

    async def copy_for_job(self, tenant: str, job_id: str, source: TrainingFile) -> TrainingFile:
        """The job's own copy of a dataset's file (a retried create finds its copy made)."""
        name = self.location.job_file(tenant, job_id)
        copy = await self._storage.rewrite(
            self._auth, _object_of(source), self.location.bucket, name
        )
        return staged_file(copy, source.input_field, source.output_field)

    async def delete(self, uri: str) -> None:
        """Delete the file; done if it is already gone."""
        found = StagedObject.from_uri(uri)
        await self._storage.delete(self._auth, found.bucket, found.name)

    async def example_batches(self, file: TrainingFile) -> AsyncIterator[list[Example]]:
        """The file's examples, EXAMPLES_PER_BATCH at a time, read a piece at a time."""
        found = _object_of(file)
        pieces = self._storage.download(self._auth, found.bucket, found.name)
        batch: list[Example] = []
        async for line in _lines(pieces):
            if not line.strip():
                continue
            fields = _loads(line)
            batch.append(Example(str(fields[file.input_field]), str(fields[file.output_field])))
            if len(batch) >= EXAMPLES_PER_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    async def examples(self, file: TrainingFile) -> list[Example]:
        """All of the file's examples (for a file known to be small)."""
        return [example async for batch in self.example_batches(file) for example in batch]


def staged_file(
    staged: StagedObject, input_field: str = "text_input", output_field: str = "output"
) -> TrainingFile:
    """The TrainingFile of an object as written."""
    return TrainingFile(staged.uri, staged.size, staged.crc32c, input_field, output_field)


def _object_of(file: TrainingFile) -> StagedObject:
    return StagedObject.from_uri(file.uri, size=file.size, crc32c=file.crc32c)


def _loads(line: bytes) -> dict[str, object]:
    """A checked line's object (orjson refuses a few lines `json` accepts, NaN for one)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        value = json.loads(line)
    return value  # type: ignore[no-any-return]


async def _lines(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    rest = b""
    async for piece in pieces:
        lines = (rest + piece).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line
    if rest:
        yield rest
