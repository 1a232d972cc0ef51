"""Gauges read from Redis every few seconds: queues, due visits, jobs by state, cache age."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.domain.job import Job
from core.domain.states import JobState
from core.errors import TuningError
from core.redis.client import Redis, translated_errors
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.runtime.clock import Clock
from core.runtime.metrics import Metrics

log = logging.getLogger(__name__)


class GaugeSampler:
    """Samples what the metrics endpoint cannot compute on its own."""

    def __init__(  # noqa: PLR0917 (collaborators)
        self,
        redis: Redis,
        keys: Keys,
        store: JobStore,
        metrics: Metrics,
        tenants: Callable[[], Iterable[str]],
        clock: Clock,
    ) -> None:
        self._redis, self._keys, self._store = redis, keys, store
        self._metrics, self._tenants, self._clock = metrics, tenants, clock

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        while not stop.is_set():
            try:
                await self.sample()
            except TuningError as exc:
                log.warning("metrics sample failed: %s", exc.message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    async def sample(self) -> None:
        now = self._clock()
        with translated_errors():
            due: Any = await self._redis.zcount(self._keys.schedule(), "-inf", int(now * 1000))
        self._metrics.schedule_due.set(int(due))
        for tenant in self._tenants():
            await self._sample_tenant(tenant, now)

    async def _sample_tenant(self, tenant: str, now: float) -> None:
        queued = await self._store.queued_ids(tenant)
        self._metrics.queue_depth.labels(tenant).set(len(queued))
        oldest = await self._store.get(tenant, queued[0]) if queued else None
        self._metrics.oldest_queued_age.labels(tenant).set(
            0 if oldest is None else max(0.0, now - oldest.create_time)
        )
        tally = await self._tally(tenant)
        for state in JobState:
            if not state.terminal:
                self._metrics.jobs.labels(tenant, state.value).set(tally.states.get(state, 0))
        stale_s = 0.0 if tally.oldest_fetch is None else max(0.0, now - tally.oldest_fetch)
        self._metrics.status_cache_age.labels(tenant).set(stale_s)

    async def _tally(self, tenant: str) -> _Tally:
        """Count the tenant's unfinished jobs one record at a time.

        A worker may track tens of thousands of jobs: holding every record at once to
        count them would raise its resident memory by kilobytes per job at each sample.
        """
        tally = _Tally()
        for job_id in await self._store.active_ids(tenant):
            job = await self._store.get(tenant, job_id)
            if job is not None:
                tally.add(job)
        return tally


@dataclass
class _Tally:
    """Unfinished jobs by state, and the oldest status fetch among the RUNNING ones."""

    states: Counter[JobState] = field(default_factory=Counter)
    oldest_fetch: float | None = None

    def add(self, job: Job) -> None:
        self.states[job.state] += 1
        fetched = job.status_fetch_time
        if job.state == JobState.RUNNING and fetched is not None:
            self.oldest_fetch = (
                fetched if self.oldest_fetch is None else min(self.oldest_fetch, fetched)
            )
