"""Datasets in Redis: one hash per dataset, in its tenant's hash slot.

The `doc` field holds what callers may read (metadata, statistics, warnings); the
`examples` field holds the validated examples, which only job creation reads.

A save counts against the tenant's storage quotas in the same script that stores it
(core.redis.storage says how; deletes are there too, as workers delete datasets past
their retention). The same script adds the dataset to the tenant's listing and to its use
set (when each dataset was uploaded or last used by a create, which retention reads).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, cast

from core.domain.job import DATASET_NAME_PREFIX, TrainingFile
from core.domain.quotas import TenantQuotas
from core.redis.client import Redis, text, translated_errors
from core.redis.keys import Keys
from core.redis.scripts import Scripts, dataset_save_call
from core.redis.storage import (
    StorageUsage,
    TenantStorage,
    datasets_exceeded,
    stored_bytes_exceeded,
)
from core.runtime.clock import Clock, system_clock
from service.dataset_parsing import DatasetFormat, DatasetStats, DatasetWarning


@dataclass(frozen=True)
class DatasetRecord:
    """A stored dataset, without its examples."""

    id: str
    tenant: str
    display_name: str
    format: DatasetFormat
    input_field: str
    output_field: str
    stats: DatasetStats
    warnings: tuple[DatasetWarning, ...]
    create_time: float
    file: TrainingFile | None = None
    """The object holding its examples (None only for a dataset stored before files)."""

    @property
    def name(self) -> str:
        return DATASET_NAME_PREFIX + self.id

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> DatasetRecord:
        data: dict[str, Any] = json.loads(raw)
        data["format"] = DatasetFormat(data["format"])
        data["stats"] = DatasetStats(**data["stats"])
        data["warnings"] = tuple(DatasetWarning(**w) for w in data["warnings"])
        if data.get("file") is not None:
            data["file"] = TrainingFile(**data["file"])
        return cls(**data)


class DatasetStore:
    """Stores, reads, lists and deletes tenants' datasets."""

    def __init__(self, redis: Redis, keys: Keys, clock: Clock = system_clock) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock
        self._scripts = Scripts(redis)
        self._storage = TenantStorage(redis, keys)

    async def save(self, record: DatasetRecord, file: TrainingFile, quotas: TenantQuotas) -> None:
        """Store the dataset's record in one write (readers see all of it or nothing), if
        the tenant's storage quotas allow its file; StorageQuotaExceeded if not (the file
        is then discarded)."""
        keys, tenant = self._keys, record.tenant
        record = dataclasses.replace(record, file=file)
        call = dataset_save_call(
            dataset_key=keys.dataset(tenant, record.id),
            datasets_key=keys.tenant_datasets(tenant),
            use_key=keys.tenant_dataset_use(tenant),
            seq_key=keys.tenant_seq(tenant),
            storage_key=keys.tenant_storage(tenant),
            doc=record.to_json(),
            file=file.uri,
            size_bytes=file.size,
            dataset_id=record.id,
            used_ms=int(self._clock() * 1000),
            max_datasets=quotas.max_datasets,
            max_stored_bytes=quotas.max_stored_bytes,
        )
        reply = int(await self._scripts.run(call))
        if reply < 0:
            await self._storage.discard_file(tenant, file.uri)
            raise (datasets_exceeded if reply == -1 else stored_bytes_exceeded)(tenant, quotas)

    async def usage(self, tenant: str) -> StorageUsage:
        """The tenant's stored datasets and bytes, as its quotas count them."""
        return await self._storage.usage(tenant)

    async def delete(self, tenant: str, dataset_id: str) -> bool:
        """Delete the dataset, freeing its quota; False if there was none."""
        return await self._storage.delete_dataset(tenant, dataset_id)

    async def discard_file(self, tenant: str, uri: str) -> None:
        """Let workers delete a file of the tenant's that nothing needs any more."""
        await self._storage.discard_file(tenant, uri)

    async def touch(self, tenant: str, dataset_id: str) -> None:
        """Record that a create used the dataset now (retention counts from its last use)."""
        # XX: a use of a dataset deleted meanwhile adds nothing back.
        use_key, used_ms = self._keys.tenant_dataset_use(tenant), int(self._clock() * 1000)
        with translated_errors():
            await self._redis.zadd(use_key, {dataset_id: used_ms}, xx=True)

    async def page(
        self, tenant: str, *, before_seq: int | None, count: int
    ) -> list[tuple[int, DatasetRecord | None]]:
        """Up to `count` of the tenant's datasets, newest first, before `before_seq`.

        The record is None where the dataset vanished between the two reads.
        """
        high: Any = "+inf" if before_seq is None else f"({before_seq}"
        with translated_errors():
            ids = cast(
                list[tuple[bytes, float]],
                await self._redis.zrevrangebyscore(
                    self._keys.tenant_datasets(tenant),
                    high,
                    "-inf",
                    start=0,
                    num=count,
                    withscores=True,
                ),
            )
            async with self._redis.pipeline(transaction=False) as pipe:
                for dataset_id, _ in ids:
                    pipe.hget(self._keys.dataset(tenant, text(dataset_id)), "doc")
                docs = await pipe.execute()
        return [
            (int(seq), None if doc is None else DatasetRecord.from_json(doc))
            for (_, seq), doc in zip(ids, docs, strict=True)
        ]

    async def get(self, tenant: str, dataset_id: str) -> DatasetRecord | None:
        with translated_errors():
            doc = await self._redis.hget(self._keys.dataset(tenant, dataset_id), "doc")
        return None if doc is None else DatasetRecord.from_json(doc)
