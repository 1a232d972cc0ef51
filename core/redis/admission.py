"""Admission: which queued job starts next, fairly across tenants and within quotas.

A new job waits in its tenant's queue (arrival order). Workers run admission rounds:
a round visits every tenant that has queued jobs, least recently served first, and
admits at most ONE job of each, if the tenant runs fewer jobs than its
`max_running` quota. An admitted job enters the running set and the schedule, where
workers pick it up. So a tenant with a thousand queued jobs gets one job per round,
like everyone else: another tenant's single job waits at most one round. The fairness
rule is this round robin, one job per tenant per turn, for every free slot.

A worker admits as many jobs as it has free slots (`admit`): rounds follow one another
until that many are admitted or nothing more can be, so a queue of 10,000 jobs starts
as fast as workers free up, not one job per tenant per turn of a worker's loop.

Each step touches one hash slot at a time (the tenant's queue and running set in its
slot; the ring of tenants and the schedule in theirs). A process dying between two
steps leaves a job admitted but not scheduled, or a tenant missing from the ring; the
sweep (worker.sweep) puts both back.
"""

from __future__ import annotations

import logging
from typing import Any

from core.domain.quotas import QuotasFor
from core.redis.client import Redis, text, translated_errors
from core.redis.keys import Keys
from core.redis.schedule import Schedule
from core.redis.scripts import Scripts, admit_call, mark_served_call

log = logging.getLogger(__name__)


class Admission:
    """Per-tenant queues, the ring of tenants waiting, and admission rounds."""

    def __init__(self, redis: Redis, keys: Keys, schedule: Schedule, quotas_for: QuotasFor):
        self._redis = redis
        self._keys = keys
        self._schedule = schedule
        self._quotas_for = quotas_for
        self._scripts = Scripts(redis)

    async def add_to_ring(self, tenant: str) -> None:
        """The tenant has queued jobs: make sure a round will visit it.

        A tenant not in the ring joins at the front (score 0); one in it keeps its place.
        """
        with translated_errors():
            await self._redis.zadd(self._keys.admission_ring(), {tenant: 0}, nx=True)

    async def position(self, tenant: str, job_id: str) -> int:
        """1-based place of a queued job in its tenant's queue; 0 if it is not queued."""
        with translated_errors():
            rank: Any = await self._redis.zrank(self._keys.tenant_queue(tenant), job_id)
        return 0 if rank is None else int(rank) + 1

    async def admit(self, count: int) -> int:
        """Admit up to `count` jobs, round after round; how many were admitted."""
        admitted = 0
        while admitted < count:
            in_round = await self.round(count - admitted)
            if not in_round:
                break
            admitted += in_round
        return admitted

    async def round(self, count: int | None = None) -> int:
        """Admit at most one job per waiting tenant (and `count` in all); how many were
        admitted."""
        with translated_errors():
            tenants = await self._redis.zrange(self._keys.admission_ring(), 0, -1)
        admitted = 0
        for raw in tenants:
            if count is not None and admitted >= count:
                break
            admitted += await self._admit_one(text(raw))
        return admitted

    async def _admit_one(self, tenant: str) -> int:
        call = admit_call(
            queue_key=self._keys.tenant_queue(tenant),
            running_key=self._keys.tenant_running(tenant),
            max_running=self._quotas_for(tenant).max_running,
        )
        reply = await self._scripts.run(call)
        if reply[0] == 0:
            await self._leave_if_empty(tenant)
            return 0
        if reply[0] < 0:
            return 0  # At its quota: the tenant keeps its place.
        job_id = text(reply[1])
        await self._schedule.due_in(tenant, job_id, 0)
        served = mark_served_call(ring_key=self._keys.admission_ring(), tenant=tenant)
        await self._scripts.run(served)
        return 1

    async def _leave_if_empty(self, tenant: str) -> None:
        with translated_errors():
            await self._redis.zrem(self._keys.admission_ring(), tenant)
            # A job queued meanwhile must not be stranded: check after leaving.
            queued = await self._redis.zcard(self._keys.tenant_queue(tenant))
        if queued:
            await self.add_to_ring(tenant)
