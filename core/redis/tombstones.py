"""Tombstones: ids of deleted jobs whose records are gone, kept until nothing of them is
left upstream.

A deleted job's record is removed once its worker has cleaned up upstream (worker.steps,
REMOVE in core.redis.scripts). But a worker paused past its lease may create the job's
model after that clean-up: its fence (worker.fence) stops it from starting a request once
the lease may have passed, yet a request already on its way lands. So REMOVE of a
deleted job leaves its id in the tenant's tombstones, scored by when; the reconciler
(worker.reconciler) deletes any model of a tombstoned id it finds upstream, and drops the
tombstone once a complete listing of the tenant's models, made past the grace period,
shows none. Retention's removal of a finished job leaves none: that job's model is the
tenant's, kept.

While a tombstone lasts, CREATE refuses its id. A job's id is derived from the caller's
request_id (core.domain.job.new_job_id), so without this a retry of the request that made
the deleted job would make a new job of the same id, whose create would find the orphan
model (409) and adopt it as its own.

Bounded: REMOVE keeps the newest `MAX_TOMBSTONES` per tenant. One pushed out leaks
nothing: the reconciler deletes a model with no record and no tombstone too, if it was
created within the job retention period.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.redis.client import Redis, text, translated_errors
from core.redis.keys import Keys

MAX_TOMBSTONES = 10_000
"""Most tombstones one tenant keeps (the newest); about 40 bytes each in Redis."""


class Tombstones:
    """Reads and drops the tenants' tombstones (REMOVE writes them)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def removed_at(self, tenant: str, job_ids: Sequence[str]) -> dict[str, float]:
        """When each tombstoned one of `job_ids` was removed (seconds since the epoch)."""
        if not job_ids:
            return {}
        with translated_errors():
            scores = await self._redis.zmscore(self._keys.tenant_tombstones(tenant), list(job_ids))
        return {j: s / 1000 for j, s in zip(job_ids, scores, strict=True) if s is not None}

    async def removed_before(self, tenant: str, before_s: float, count: int) -> list[str]:
        """Up to `count` ids, oldest first, of jobs removed before `before_s`."""
        key = self._keys.tenant_tombstones(tenant)
        with translated_errors():
            members: list[Any] = await self._redis.zrangebyscore(
                key, "-inf", f"({int(before_s * 1000)}", start=0, num=count
            )
        return [text(m) for m in members]

    async def drop(self, tenant: str, job_ids: Sequence[str]) -> None:
        """Forget these tombstones: nothing of their jobs is left upstream."""
        if job_ids:
            with translated_errors():
                await self._redis.zrem(self._keys.tenant_tombstones(tenant), *job_ids)
