"""Reconciliation: put back on the schedule every unfinished job a crash left off it.

The schedule is the worker's to-do list; the per-tenant active sets (updated in the same
scripts that change a job's state) are the record of what is unfinished. A job can be
in the second and missing from the first when a process died between two writes in
different hash slots (the API between storing and queueing a job), or when Redis lost
recent writes in a failover. Each sweep schedules such jobs, due now; the visit that
follows compares the job with the upstream's truth and repairs it: a model created but
not recorded is adopted (409), a job stuck in CREATING is submitted again under the same
id, a cancel not yet confirmed is confirmed, a deleted job is cleaned up.

Each sweep also runs the retention pass of each tenant (worker.retention), if it has one,
and gives back the slots of Vertex AI projects (core.redis.project_slots) that a crash left
held, or places in line left taken: those of jobs gone, ended, or placed on another project.
The waiters that lets in are made due now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from core.domain.job import Job
from core.redis.admission import Admission
from core.redis.job_store import JobStore
from core.redis.project_slots import ProjectSlots
from core.redis.schedule import Schedule, parse_member
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
        *,
        slots: ProjectSlots | None = None,
        projects: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self._slots = slots
        self._projects = projects  # every Vertex AI project of the tenants file, now
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
        await self._free_leaked_slots()
        return repaired

    async def _free_leaked_slots(self) -> int:
        """Give back every project slot or place in line that no job needs; how many."""
        if self._slots is None:
            return 0
        freed = 0
        for project in self._projects():
            if self._slots.limit(project) <= 0:
                continue
            members = await self._slots.holders(project) + await self._slots.waiters(project)
            for member in members:
                tenant, job_id = parse_member(member)
                if _needs_slot(await self._store.get(tenant, job_id), project):
                    continue
                for woken in await self._slots.give_back(project, member):
                    await self._schedule.due_in(*parse_member(woken), 0)
                freed += 1
        if freed:
            log.warning("sweep: %d project slots or places in line given back", freed)
        return freed


def _needs_slot(job: Job | None, project: str) -> bool:
    """Whether `job` may hold a slot of `project` or wait for one."""
    if job is None or job.state.terminal:
        return False
    return project in (t.project for t in job.provider.targets())
