"""What each tenant stores, against its storage quotas, and the deletes that free it.

A tenant's storage hash (`Keys.tenant_storage`) counts its datasets and the bytes of
examples it keeps: its datasets' and its jobs' inline examples, which a job keeps until
it is deleted or removed by retention (they are its recipe). The
scripts that store and delete them (core.redis.scripts: CREATE, SAVE, REMOVE,
DATASET_SAVE, DATASET_DELETE) change the counts in the same step, so two writes racing
for the last of a quota cannot both get it, and a delete gives back exactly what its
write took. The API stores datasets (service.dataset_store); workers delete the ones past
their retention (worker.retention): both need what is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from core.domain.quotas import TenantQuotas
from core.errors import StorageQuotaExceeded
from core.redis.client import Redis, text, translated_errors
from core.redis.keys import Keys
from core.redis.scripts import Scripts, dataset_delete_call


@dataclass(frozen=True)
class StorageUsage:
    """What a tenant stores against its storage quotas."""

    datasets: int
    stored_bytes: int


class TenantStorage:
    """Reads tenants' storage, and deletes their datasets."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts(redis)

    async def usage(self, tenant: str) -> StorageUsage:
        """The tenant's stored datasets and bytes, as its quotas count them."""
        with translated_errors():
            fields = await self._redis.hmget(
                self._keys.tenant_storage(tenant), ["datasets", "bytes"]
            )
        return StorageUsage(int(fields[0] or 0), int(fields[1] or 0))

    async def delete_dataset(
        self, tenant: str, dataset_id: str, *, unused_before_s: float = 0
    ) -> bool:
        """Delete the dataset, freeing its quota; False if there was none.

        With `unused_before_s`, only if it was last uploaded or used before then (a
        create that uses it in the meantime keeps it).
        """
        keys = self._keys
        call = dataset_delete_call(
            dataset_key=keys.dataset(tenant, dataset_id),
            datasets_key=keys.tenant_datasets(tenant),
            use_key=keys.tenant_dataset_use(tenant),
            storage_key=keys.tenant_storage(tenant),
            discarded_key=keys.tenant_discarded_files(tenant),
            dataset_id=dataset_id,
            unused_before_ms=int(unused_before_s * 1000),
        )
        return bool(await self._scripts.run(call))

    async def discard_file(self, tenant: str, uri: str) -> None:
        """Let workers delete the tenant's file at `uri`: nothing needs it any more."""
        with translated_errors():
            await self._redis.sadd(self._keys.tenant_discarded_files(tenant), uri)

    async def discarded_files(self, tenant: str, count: int) -> list[str]:
        """Up to `count` of the tenant's discarded files' URIs, in no order."""
        with translated_errors():
            members = await self._redis.srandmember(
                self._keys.tenant_discarded_files(tenant), count
            )
        return [text(member) for member in cast(list[Any], members or [])]

    async def forget_discarded(self, tenant: str, uri: str) -> None:
        """The file at `uri` is deleted: stop listing it."""
        with translated_errors():
            await self._redis.srem(self._keys.tenant_discarded_files(tenant), uri)

    async def datasets_unused_before(self, tenant: str, before_s: float, count: int) -> list[str]:
        """Up to `count` ids of datasets last uploaded or used before `before_s`, oldest first."""
        with translated_errors():
            members: list[Any] = await self._redis.zrangebyscore(
                self._keys.tenant_dataset_use(tenant),
                "-inf",
                f"({int(before_s * 1000)}",
                start=0,
                num=count,
            )
        return [text(m) for m in members]


def datasets_exceeded(tenant: str, quotas: TenantQuotas) -> StorageQuotaExceeded:
    """The error for an upload past the tenant's `max_datasets`."""
    return StorageQuotaExceeded(
        tenant, quota="max_datasets", limit=quotas.max_datasets, unit="datasets"
    )


def stored_bytes_exceeded(tenant: str, quotas: TenantQuotas) -> StorageQuotaExceeded:
    """The error for a write that would pass the tenant's `max_stored_bytes`."""
    return StorageQuotaExceeded(
        tenant, quota="max_stored_bytes", limit=quotas.max_stored_bytes, unit="bytes"
    )
