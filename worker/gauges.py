"""Gauges read from Redis every few seconds: queues, due visits, jobs by state, cache age,
and each tenant's usage of the month against its budget."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from core.domain.quotas import QuotasFor
from core.domain.states import JobState
from core.domain.usage import month_of, used_fraction
from core.errors import TuningError
from core.redis.client import Redis, translated_errors
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.project_slots import ProjectSlots
from core.redis.usage import UsageReader
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
        *,
        slots: ProjectSlots | None = None,
        projects: Callable[[], Iterable[str]] = tuple,
        quotas_for: QuotasFor | None = None,
    ) -> None:
        self._redis, self._keys, self._store = redis, keys, store
        self._metrics, self._tenants, self._clock = metrics, tenants, clock
        self._slots, self._projects = slots, projects  # Vertex AI projects' slots
        self._usage = UsageReader(redis, keys)
        self._quotas_for = quotas_for  # None: no budgets to compare with

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
        now_ms = int(now * 1000)
        with translated_errors():
            due: Any = await self._redis.zcount(self._keys.schedule(), "-inf", now_ms)
            oldest: Any = await self._redis.zrange(
                self._keys.poll_schedule(), 0, 0, withscores=True
            )
        self._metrics.schedule_due.set(int(due))
        oldest_ms = oldest[0][1] if oldest else now_ms
        self._metrics.poll_lag.set(max(0.0, (now_ms - oldest_ms) / 1000))
        tenants = list(self._tenants())
        for tenant in tenants:
            await self._sample_tenant(tenant, now)
        await self._sample_usage(tenants, now)
        await self._sample_projects()

    async def _sample_usage(self, tenants: list[str], now: float) -> None:
        """The month's usage of every tenant, in one round trip, and its budget used."""
        metrics = self._metrics
        for usage in await self._usage.months(tenants, month_of(now)):
            tenant, estimated = usage.tenant, usage.estimated_training_tokens
            metrics.usage_jobs.labels(tenant).set(usage.jobs_created)
            metrics.usage_training_tokens.labels(tenant, "estimated").set(estimated)
            billable = usage.billable_training_tokens
            metrics.usage_training_tokens.labels(tenant, "billable").set(billable)
            used = used_fraction(estimated, self._budget_tokens(tenant))
            metrics.training_budget_used.labels(tenant).set(used)

    def _budget_tokens(self, tenant: str) -> int:
        if self._quotas_for is None:
            return 0
        return int(self._quotas_for(tenant).training_token_budget)

    async def _sample_projects(self) -> None:
        """Slots used and jobs waiting, for each Vertex AI project with a limit."""
        if self._slots is None:
            return
        for project in self._projects():
            if self._slots.limit(project) > 0:
                holding, waiting = await self._slots.counts(project)
                self._metrics.project_slots_used.labels(project).set(holding)
                self._metrics.project_jobs_waiting.labels(project).set(waiting)

    async def _sample_tenant(self, tenant: str, now: float) -> None:
        """A few keys per tenant, however many jobs it has: the scripts that write jobs keep
        the counts and the fetched set (core.redis.job_store.JobStore.state_counts)."""
        store, metrics = self._store, self._metrics
        metrics.queue_depth.labels(tenant).set(await store.queue_depth(tenant))
        oldest_id = await store.oldest_queued_id(tenant)
        oldest = None if oldest_id is None else await store.get(tenant, oldest_id)
        metrics.oldest_queued_age.labels(tenant).set(
            0 if oldest is None else max(0.0, now - oldest.create_time)
        )
        counts = await store.state_counts(tenant)
        for state in JobState:
            if not state.terminal:
                metrics.jobs.labels(tenant, state.value).set(counts.get(state, 0))
        metrics.jobs_stalled.labels(tenant).set(await store.stalled_count(tenant))
        fetched = await store.oldest_fetch(tenant)
        stale_s = 0.0 if fetched is None else max(0.0, now - fetched)
        metrics.status_cache_age.labels(tenant).set(stale_s)
