"""GetTuningJob's hot path: the answer, already serialized, from the near cache.

A job's status changes only when a worker writes it (a poll every few seconds at most)
and is read by every poller of every caller in between, so each API replica keeps the
serialized `TuningJob` of the jobs it was asked about (service.near_cache: Redis tells
every replica the moment a job's key is written, and the entry is dropped). A hit costs
a dictionary lookup and no Redis round trip, and the bytes go out as they are.

A QUEUED job's answer also carries its place in the tenant's queue, which moves whenever
another job is admitted; those answers are built afresh on every call. Whether the job's
base model is retiring moves with the clock: it is appended to every answer as it is read
(service.retirement), never cached; so is a RUNNING job's estimated end
(service.estimates).

What is cached is only what exists, or did: a name of the wrong shape is refused before
any lookup (service.validation.resource_id), and a well-shaped id that Redis has never
held is answered NOT_FOUND without an entry, so no caller can fill the cache with names
of its choosing. A deleted job's entry is kept: it was the tenant's, and is polled.
The cache is bounded in bytes too (`status_size_bytes` measures an entry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from core.domain.job import JOB_NAME_PREFIX, Job
from core.domain.states import JobState
from core.errors import NotFound
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from service.convert import job_to_proto
from service.estimates import EndEstimate
from service.jobs_api import JobsApi, job_id_of
from service.near_cache import NearCache
from service.retirement import retirement_bytes


@dataclass(frozen=True)
class CachedStatus:
    """A job as last read (None: deleted), and its serialized answer unless QUEUED."""

    job: Job | None
    answer: bytes | None
    version: int = 0
    """The record's version as read (JobStore's compare-and-set counter)."""
    estimate: EndEstimate | None = None
    """A RUNNING job's estimated end, serialized as of any time (service.estimates)."""


class Current(NamedTuple):
    """A job as it is now: the record, its serialized answer, the record's version."""

    job: Job
    answer: bytes
    version: int


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
        return (await self.current(tenant, job_id_of(name))).answer

    async def get(self, tenant: str, job_id: str) -> Job | None:
        """The tenant's job `job_id` as the cache holds it (None: none, or deleted), for
        callers that need the record, not the answer (GenerateContent's model lookup)."""
        return (await self._status(tenant, job_id)).job

    async def current(self, tenant: str, job_id: str) -> Current:
        """The tenant's job `job_id` (a valid id) now; NotFound if it has none."""
        status = await self._status(tenant, job_id)
        job = status.job
        if job is None:
            raise NotFound(f"{JOB_NAME_PREFIX}{job_id} not found")
        retirement = retirement_bytes(self._api.retirement(job))
        if status.answer is not None:
            estimate = status.estimate
            if estimate is not None:
                retirement += estimate.bytes_at(self._api.now())
            return Current(job, status.answer + retirement, status.version)
        position = await self._api.queue_position(job)  # QUEUED: it has no estimate
        answer = job_to_proto(job, position).SerializeToString() + retirement
        return Current(job, answer, status.version)

    async def _status(self, tenant: str, job_id: str) -> CachedStatus:
        key = self._keys.job(tenant, job_id)
        cache = self._cache
        cached = cache.lookup(key) if cache is not None else None
        if cached is not None:
            return cached
        fill = cache.begin(key) if cache is not None else None
        found = await self._store.read(tenant, job_id)
        if found is None:
            if cache is not None:
                cache.abandon(fill)  # never kept: see the module's docstring
            return _MISSING
        # BCAST tracking reports writes to keys never read too, so "deleted" can be kept.
        status = _status_of(None if found.job.deleted else found.job, found.version)
        if cache is not None:
            cache.store(fill, status)
        return status


def _status_of(job: Job | None, version: int) -> CachedStatus:
    if job is None or job.state == JobState.QUEUED:
        return CachedStatus(job, None, version)
    answer = job_to_proto(job).SerializeToString()
    return CachedStatus(job, answer, version, EndEstimate.of(job))


_MISSING = CachedStatus(None, None)
JOB_OBJECT_BYTES = 3_000
"""A Job in memory with no text: the record, its hyperparameters and progress objects."""
SNAPSHOT_BYTES = 250
STR_BYTES = 60
"""A Python str's header, and the dict slot or field that holds it."""


def status_size_bytes(status: CachedStatus) -> int:
    """About what a cached status holds in memory: the answer's bytes and the Job.

    An estimate from the job's variable parts (its text, labels and snapshots), cheap
    enough for every fill; the constants above were measured with tracemalloc on jobs
    read back by `Job.from_json` (the estimate is within 10% for a 60 KB job).
    """
    answer = len(status.answer or b"")
    job = status.job
    if job is None:
        return answer
    texts = [job.display_name, job.description, job.tuned_model, job.operation, job.dataset]
    texts += [*job.labels.keys(), *job.labels.values()]
    if job.error is not None:
        texts += [job.error.message, *job.error.metadata.keys(), *job.error.metadata.values()]
    chars = sum(len(text) + STR_BYTES for text in texts)
    return answer + JOB_OBJECT_BYTES + chars + SNAPSHOT_BYTES * len(job.snapshots)
