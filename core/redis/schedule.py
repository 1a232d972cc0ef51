"""The schedule: when a worker should next look at each unfinished job.

One sorted set holds every job that still needs work, scored by the time (ms, Redis
clock) it is next due. `claim` hands due members to a worker and pushes their due time
a lease ahead in the same atomic step, so a member whose worker dies comes due again
by itself: nothing is lost, and nobody waits on a dead worker longer than the lease.
Whether the worker may then act is decided by the job's own lease (core.redis.job_store).
"""

from __future__ import annotations

from core.redis.client import Redis, text, translated_errors
from core.redis.keys import Keys
from core.redis.scripts import Scripts, claim_due_call, due_in_call, ensure_due_call


def member(tenant: str, job_id: str) -> str:
    return f"{tenant}/{job_id}"


def parse_member(raw: bytes | str) -> tuple[str, str]:
    tenant, _, job_id = text(raw).partition("/")
    return tenant, job_id


class Schedule:
    """Due times of unfinished jobs, shared by all workers."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._schedule_key = keys.schedule()
        self._scripts = Scripts(redis)

    async def due_in(
        self, tenant: str, job_id: str, delay_s: float, *, only_if_present: bool = False
    ) -> None:
        """Make the job due `delay_s` from now (Redis time)."""
        call = due_in_call(
            schedule_key=self._schedule_key,
            member=member(tenant, job_id),
            delay_ms=int(delay_s * 1000),
            only_if_present=only_if_present,
        )
        await self._scripts.run(call)

    async def claim(self, count: int, lease_s: float) -> list[tuple[str, str]]:
        """Up to `count` due jobs, each pushed `lease_s` ahead in the same step."""
        call = claim_due_call(
            schedule_key=self._schedule_key, count=count, lease_ms=int(lease_s * 1000)
        )
        due = await self._scripts.run(call)
        return [parse_member(m) for m in due]

    async def ensure(self, tenant: str, job_ids: list[str]) -> int:
        """Schedule, due now, each of the jobs that is not scheduled; how many were missing."""
        if not job_ids:
            return 0
        call = ensure_due_call(
            schedule_key=self._schedule_key, members=[member(tenant, j) for j in job_ids]
        )
        return int(await self._scripts.run(call))

    async def remove(self, tenant: str, job_id: str) -> None:
        with translated_errors():
            await self._redis.zrem(self._schedule_key, member(tenant, job_id))

    async def size(self) -> int:
        with translated_errors():
            return int(await self._redis.zcard(self._schedule_key))
