"""GetTuningJob's hot path: the answer, already serialized, from the near cache.

A job's status changes only when a worker writes it (a poll every few seconds at most)
and is read by every poller of every caller in between, so each API replica keeps the
serialized `TuningJob` of the jobs it was asked about (service.near_cache: Redis tells
every replica the moment a job's key is written, and the entry is dropped). A hit costs
a dictionary lookup and no Redis round trip, and the bytes go out as they are.

A QUEUED job's answer also carries its place in the tenant's queue, which moves whenever
another job is admitted; those answers are built afresh on every call.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain.job import Job
from core.domain.states import JobState
from core.errors import NotFound
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from service.convert import job_to_proto
from service.jobs_api import JobsApi, job_id_of
from service.near_cache import NearCache


@dataclass(frozen=True)
class CachedStatus:
    """A job as last read (None: deleted), and its serialized answer unless QUEUED."""

    job: Job | None
    answer: bytes | None


class StatusReader:
    """Serialized GetTuningJob answers, cached per job while Redis says they hold."""

    def __init__(
        self, api: JobsApi, store: JobStore, keys: Keys, cache: NearCache[CachedStatus] | None
    ) -> None:
        self._api = api
        self._store = store
        self._keys = keys
        self._cache = cache

    async def answer(self, tenant: str, name: str) -> bytes:
        """The tenant's job `name` as a serialized TuningJob; NotFound if it has none."""
        status = await self._status(tenant, job_id_of(name))
        if status.job is None:
            raise NotFound(f"{name} not found")
        if status.answer is not None:
            return status.answer
        position = await self._api.queue_position(status.job)
        return job_to_proto(status.job, position).SerializeToString()

    async def _status(self, tenant: str, job_id: str) -> CachedStatus:
        key = self._keys.job(tenant, job_id)
        cache = self._cache
        cached = cache.lookup(key) if cache is not None else None
        if cached is not None:
            return cached
        fill = cache.begin(key) if cache is not None else None
        found = await self._store.read(tenant, job_id)
        # BCAST tracking reports writes to keys never read too, so "not found" can be kept.
        status = _status_of(None if found is None or found.job.deleted else found.job)
        if cache is not None:
            cache.store(fill, status)
        return status


def _status_of(job: Job | None) -> CachedStatus:
    if job is None or job.state == JobState.QUEUED:
        return CachedStatus(job, None)
    return CachedStatus(job, job_to_proto(job).SerializeToString())
