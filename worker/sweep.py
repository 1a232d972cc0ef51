"""Reconciliation: put back on the schedule every unfinished job a crash left off it.

The schedule is the worker's to-do list; the per-tenant active sets (updated in the same
scripts that change a job's state) are the record of what is unfinished. A job can be
in the second and missing from the first when a process died between two writes in
different hash slots (the API between storing and queueing a job), or when Redis lost
recent writes in a failover. Each sweep schedules such jobs, due now; the visit that
follows compares the job with the upstream's truth and repairs it: a model created but
not recorded is adopted (409), a job stuck in CREATING is submitted again under the same
id, a cancel not yet confirmed is confirmed, a deleted job is cleaned up.

Each sweep also runs the retention pass of each tenant (worker.retention), if it has one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from core.redis.admission import Admission
from core.redis.job_store import JobStore
from core.redis.schedule import Schedule
from worker.retention import Retention

log = logging.getLogger(__name__)


class Sweeper:
    """Compares each tenant's active set with the schedule."""

    def __init__(
        self,
        store: JobStore,
        schedule: Schedule,
        admission: Admission,
        tenants: Callable[[], Iterable[str]],
        retention: Retention | None = None,
    ) -> None:
        self._store = store
        self._schedule = schedule
        self._admission = admission
        self._tenants = tenants  # asked at every sweep: the tenants file can change
        self._retention = retention

    async def sweep(self) -> int:
        """Schedule every admitted unfinished job that is not scheduled, and make sure every
        tenant with queued jobs is in the admission ring; how many jobs were repaired."""
        repaired = 0
        for tenant in self._tenants():
            queued = set(await self._store.queued_ids(tenant))
            if queued:
                await self._admission.add_to_ring(tenant)
            admitted = [j for j in await self._store.active_ids(tenant) if j not in queued]
            missing = await self._schedule.ensure(tenant, admitted)
            if missing:
                log.warning("sweep: %d unscheduled jobs of tenant %s put back", missing, tenant)
            repaired += missing
            if self._retention is not None:
                await self._retention.prune(tenant)
        return repaired
