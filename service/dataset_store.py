"""Datasets in Redis: one hash per dataset, in its tenant's hash slot.

The `doc` field holds what callers may read (metadata, statistics, warnings); the
`examples` field holds the validated examples, which only job creation reads.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from core.redis.client import Redis, translated_errors
from core.redis.keys import Keys
from service.dataset_parsing import DatasetFormat, DatasetStats, DatasetWarning

DATASET_NAME_PREFIX = "datasets/"


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
        return cls(**data)


class DatasetStore:
    """Stores and reads tenants' datasets."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def save(self, record: DatasetRecord, examples: bytes) -> None:
        """Store the dataset in one write: readers see all of it or nothing."""
        key = self._keys.dataset(record.tenant, record.id)
        with translated_errors():
            await self._redis.hset(key, mapping={"doc": record.to_json(), "examples": examples})

    async def get(self, tenant: str, dataset_id: str) -> DatasetRecord | None:
        with translated_errors():
            doc = await self._redis.hget(self._keys.dataset(tenant, dataset_id), "doc")
        return None if doc is None else DatasetRecord.from_json(doc)

    async def examples(self, tenant: str, dataset_id: str) -> bytes | None:
        with translated_errors():
            raw = await self._redis.hget(self._keys.dataset(tenant, dataset_id), "examples")
        return None if raw is None else bytes(raw)  # type: ignore[arg-type]
