"""Retention: remove finished jobs and unused datasets once they are old enough.

A finished job (SUCCEEDED, FAILED, CANCELLED; not deleted) is in its tenant's ended set,
scored by when it ended (core.redis.scripts SAVE). Past `job_retention_s` its record is
removed under its lease, as a deleted job's is (core.redis.job_store REMOVE): a job whose
lease another worker holds is left for the next pass, and one deleted meanwhile is left
to its clean-up. Only the record goes: the tuned model upstream is the tenant's, kept.

A dataset is in its tenant's use set, scored by its upload or its last use by a create.
Past `dataset_retention_s` unused it is deleted by a script that checks that score again
in the same step, so a create using the dataset just then keeps it.

Each pass removes at most `batch` of each per tenant, so a pass is bounded however much
has expired (the rest goes in the next passes). Every step is idempotent: several workers
may run passes at once, and a removal that one makes, another finds done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.dataset_files import DatasetFiles
from core.errors import LeaseHeld
from core.redis.job_store import JobStore
from core.redis.storage import TenantStorage
from core.runtime.clock import Clock

log = logging.getLogger(__name__)

BATCH = 100
"""Most jobs, and apart datasets, one pass removes per tenant."""
LEASE_S = 10.0
"""The lease a removal holds on a job: a removal takes two Redis round trips."""


@dataclass(frozen=True)
class Removed:
    """What one pass removed."""

    jobs: int = 0
    datasets: int = 0


class Retention:
    """Removes what is past its retention, one tenant at a time."""

    def __init__(
        self,
        store: JobStore,
        storage: TenantStorage,
        clock: Clock,
        *,
        job_retention_s: float,
        dataset_retention_s: float,
        batch: int = BATCH,
        files: DatasetFiles | None = None,
    ) -> None:
        self._files = files
        self._store = store
        self._storage = storage
        self._clock = clock
        self._job_retention_s = job_retention_s
        self._dataset_retention_s = dataset_retention_s
        self._batch = batch

    async def prune(self, tenant: str) -> Removed:
        """One bounded pass over the tenant's finished jobs and datasets (0: kept forever)."""
        now = self._clock()
        jobs = datasets = 0
        if self._job_retention_s > 0:
            jobs = await self._prune_jobs(tenant, now - self._job_retention_s)
        if self._dataset_retention_s > 0:
            datasets = await self._prune_datasets(tenant, now - self._dataset_retention_s)
        await self._delete_discarded(tenant)
        if jobs or datasets:
            log.info("retention: tenant %s: %d jobs, %d datasets removed", tenant, jobs, datasets)
        return Removed(jobs, datasets)

    async def _prune_jobs(self, tenant: str, ended_before_s: float) -> int:
        removed = 0
        for job_id in await self._store.ended_before(tenant, ended_before_s, self._batch):
            removed += await self._remove_job(tenant, job_id)
        return removed

    async def _remove_job(self, tenant: str, job_id: str) -> int:
        """Remove the finished job under its lease; 1 if this call removed it."""
        try:
            acquired = await self._store.acquire(tenant, job_id, LEASE_S)
        except LeaseHeld:
            return 0  # A visit (a delete's clean-up, say) is on it: the next pass looks.
        if acquired is None:
            await self._store.forget_ended(tenant, job_id)
            return 0
        lease, current = acquired
        if current.job.deleted or not current.job.state.terminal:
            await self._store.release(lease)
            return 0
        if current.job.training_file is not None:  # it ended before it was submitted
            await self._storage.discard_file(tenant, current.job.training_file.uri)
        return int(await self._store.remove(lease, retired=True))

    async def _delete_discarded(self, tenant: str) -> None:
        """Delete files nothing needs any more (core.dataset_files), a batch per pass; one
        that fails to go stays listed for the next pass."""
        if self._files is None:
            return
        for uri in await self._storage.discarded_files(tenant, self._batch):
            await self._files.delete(uri)
            await self._storage.forget_discarded(tenant, uri)

    async def _prune_datasets(self, tenant: str, unused_before_s: float) -> int:
        removed = 0
        ids = await self._storage.datasets_unused_before(tenant, unused_before_s, self._batch)
        for dataset_id in ids:
            deleted = await self._storage.delete_dataset(
                tenant, dataset_id, unused_before_s=unused_before_s
            )
            removed += int(deleted)
        return removed
