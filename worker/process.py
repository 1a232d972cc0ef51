"""Wiring of the worker process: clients, credentials, provider, loop."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import aiohttp
import httpx

from core.cloud_storage import StorageClient
from core.dataset_files import DatasetFiles
from core.domain.providers import ProviderChoice, VertexTarget
from core.domain.quotas import QuotasFor
from core.redis.admission import Admission
from core.redis.client import Redis, connect
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.lock import FleetLock
from core.redis.project_slots import ProjectSlots
from core.redis.schedule import Schedule
from core.redis.scripts import PollBudget
from core.redis.startup import RedisStartup
from core.redis.storage import TenantStorage
from core.redis.token_bucket import DEFAULT_BACKGROUND_WAIT_S, RedisTokenBucket, Unlimited
from core.redis.tombstones import Tombstones
from core.runtime import tracing
from core.runtime.clock import Clock, system_clock
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.runtime.signals import stop_signals
from core.security.credentials import CredentialSource
from core.security.tenants import TenantDirectory
from core.security.token_source import TokenSource
from core.upstream_http import Limiter, open_session
from worker import fence
from worker.gauges import GaugeSampler
from worker.gemini import GeminiClient, GeminiProvider
from worker.health import WorkerHealth
from worker.provider import TuningProvider
from worker.providers import Providers
from worker.reconciler import Policy, Reconciler
from worker.retention import Retention
from worker.steps import Steps, Wake
from worker.sweep import Sweeper
from worker.training_data import TrainingData
from worker.vertex.client import VertexClient
from worker.vertex.provider import VertexProvider
from worker.worker import Worker

log = logging.getLogger(__name__)

RATE_LIMIT_MAX_WAIT_S = 2.0
OBSERVE_INTERVAL_S = 15.0


def upstream_session(settings: Settings) -> aiohttp.ClientSession:
    """The worker's HTTP client of the upstreams: a connection per visit it may run."""
    return open_session(
        timeout_s=settings.upstream_timeout_s, max_connections=max(settings.worker_concurrency, 10)
    )


def upstream_limiter(settings: Settings, redis: Redis, keys: Keys) -> Limiter:
    """The fleet-wide token bucket, or no limit when the rate is 0."""
    if settings.upstream_rps <= 0:
        return Unlimited()
    return RedisTokenBucket(
        redis,
        keys.upstream_bucket(),
        rate_per_s=settings.upstream_rps,
        burst=settings.upstream_burst,
        max_wait_s=RATE_LIMIT_MAX_WAIT_S,
    )


def poll_budget(settings: Settings, keys: Keys) -> PollBudget:
    """What the schedule's claims spend on the polls they hand out: the same bucket as
    `upstream_limiter`'s, waited for no longer than a poll may wait for a token."""
    return PollBudget(
        bucket_key=keys.upstream_bucket(),
        rate_per_s=max(settings.upstream_rps, 0.0),
        burst=settings.upstream_burst,
        wait_ms=int(DEFAULT_BACKGROUND_WAIT_S * 1000),
    )


@dataclass(frozen=True)
class WorkerWiring:
    """What a worker is built from: its settings, Redis, the tenants, the HTTP clients of
    the upstream and of the OAuth token endpoint, a clock and its metrics."""

    settings: Settings
    redis: Redis
    tenants: TenantDirectory
    http: aiohttp.ClientSession
    token_http: httpx.Client
    clock: Clock = system_clock
    metrics: Metrics = field(default_factory=Metrics.create)

    @property
    def keys(self) -> Keys:
        return Keys(self.settings.redis_key_prefix)

    @cached_property
    def dataset_files(self) -> DatasetFiles | None:
        """The platform's dataset bucket, one client and token for the whole worker."""
        return DatasetFiles.from_settings(self.settings, self.http, self.token_http, self.metrics)

    @property
    def store(self) -> JobStore:
        """The job store on this wiring's Redis and clock."""
        return JobStore(self.redis, self.keys, self.clock, max_events=self.settings.job_max_events)

    @cached_property
    def project_slots(self) -> ProjectSlots:
        """The slots of Vertex AI projects, each project's limit as the tenants file (or
        else the settings) says now."""
        default = self.settings.upstream_project_max_jobs
        return ProjectSlots(
            self.redis, self.keys, lambda project: self.tenants.project_limit(project, default)
        )


def build_worker(wiring: WorkerWiring, *, quotas_for: QuotasFor | None = None) -> Worker:
    """A worker wired to Redis, the Gemini API and the tenants' credentials."""
    settings, redis, tenants = wiring.settings, wiring.redis, wiring.tenants
    steps = build_steps(wiring)
    schedule = Schedule(redis, wiring.keys, poll_budget(settings, wiring.keys))
    quotas = quotas_for or tenants.quotas_for(settings.default_quotas())
    admission = Admission(redis, wiring.keys, schedule, quotas)
    retention = Retention(
        steps.store,
        TenantStorage(redis, wiring.keys),
        wiring.clock,
        job_retention_s=settings.job_retention_s,
        dataset_retention_s=settings.dataset_retention_s,
        files=wiring.dataset_files,
    )
    sweeper = Sweeper(
        steps.store,
        schedule,
        admission,
        tenants.tenant_ids,
        retention,
        slots=wiring.project_slots,
        projects=tenants.projects,
    )
    return Worker(
        steps.store,
        schedule,
        steps,
        settings,
        sweeper=sweeper,
        admission=admission,
        metrics=wiring.metrics,
    )


def build_steps(wiring: WorkerWiring) -> Steps:
    """What a worker does to each job, wired to its job's provider and the credentials."""
    providers, auth_for = build_providers(wiring)
    settings, metrics, redis, keys = wiring.settings, wiring.metrics, wiring.redis, wiring.keys

    return Steps(
        wiring.store,
        providers,
        auth_for,
        settings,
        wiring.clock,
        metrics=metrics,
        training=TrainingData(redis, keys, wiring.dataset_files),
        slots=wiring.project_slots,
        wake=waker(Schedule(redis, keys)),
    )


def waker(schedule: Schedule) -> Wake:
    """Make a job due now on `schedule` (a waiter a freed project slot admits)."""

    async def wake(tenant: str, job_id: str) -> None:
        await schedule.due_in(tenant, job_id, 0)

    return wake


def build_reconciler(wiring: WorkerWiring) -> Reconciler:
    """The reconciler (worker.reconciler), on a provider and credentials of its own, whose
    requests share the fleet's upstream rate limit with the visits'."""
    providers, auth_for = build_providers(wiring)
    redis, keys, tenants = wiring.redis, wiring.keys, wiring.tenants

    def providers_of(tenant_id: str) -> list[TuningProvider]:
        """Each upstream the tenant's jobs may live in: its provider's targets (a Vertex
        AI tenant's main project and pools), or the Gemini API."""
        found = tenants.tenant(tenant_id)
        choice = found.provider if found is not None else ProviderChoice()
        targets = choice.targets()
        if not targets:
            return [providers.of(choice)]
        return [providers.of(choice.placed_on(t)) for t in targets]

    return Reconciler(
        wiring.store,
        Tombstones(redis, keys),
        FleetLock(redis, keys.reconciler_lock()),
        providers_of,
        auth_for,
        wiring.tenants.tenant_ids,
        wiring.clock,
        Policy.from_settings(wiring.settings),
        metrics=wiring.metrics,
    )


def build_providers(wiring: WorkerWiring) -> tuple[Providers, Callable[[str], TokenSource]]:
    """The Gemini API's provider and Vertex AI's (one per target), and each tenant's
    TokenSource by its id."""
    settings, redis, keys, metrics = wiring.settings, wiring.redis, wiring.keys, wiring.metrics
    credentials = CredentialSource.from_settings(
        settings, wiring.tenants, redis, wiring.token_http, metrics
    )
    limiter = upstream_limiter(settings, redis, keys)
    client = GeminiClient(wiring.http, settings.upstream_base_url, limiter, metrics)
    storage = StorageClient(
        wiring.http,
        base_url=settings.storage_base_url,
        limiter=limiter,
        metrics=metrics,
        fence=fence.check,
    )

    def vertex_at(target: VertexTarget) -> TuningProvider:
        vertex = VertexClient(
            wiring.http,
            target.location,
            base_url=settings.vertex_base_url,
            limiter=limiter,
            metrics=metrics,
        )
        return VertexProvider(vertex, storage, target)

    return Providers(GeminiProvider(client), vertex_at), credentials.for_tenant


async def _run_until_stopped(wiring: WorkerWiring, worker: Worker) -> None:
    """Serve health and metrics, wait for Redis (core.redis.startup), then work until
    SIGTERM."""
    settings, redis, metrics = wiring.settings, wiring.redis, wiring.metrics
    if settings.metrics_listen:
        metrics.serve(settings.metrics_listen)
    startup = RedisStartup(redis)
    health = WorkerHealth(
        redis,
        settings.worker_health_listen,
        conditions=startup.conditions(),
        redis_up=metrics.redis_up,
    )
    await health.start()
    print(f"WORKER_READY pid={os.getpid()} health_port={health.port}", flush=True)
    try:
        async with stop_signals() as stop:
            if await startup.wait(stop):
                await health.check_now()
                await _work(wiring, worker, health, stop)
    finally:
        await health.stop()


async def _work(
    wiring: WorkerWiring, worker: Worker, health: WorkerHealth, stop: asyncio.Event
) -> None:
    """Run the worker, sample its gauges and run the reconciler's passes until `stop`;
    health drains from then on. Each task ends by itself once `stop` is set (none is
    cancelled, so none is cut off inside a Redis call), and all are awaited."""
    tenant_ids = wiring.tenants.tenant_ids
    gauges = GaugeSampler(
        wiring.redis,
        wiring.keys,
        wiring.store,
        wiring.metrics,
        tenant_ids,
        wiring.clock,
        slots=wiring.project_slots,
        projects=wiring.tenants.projects,
        quotas_for=wiring.tenants.quotas_for(wiring.settings.default_quotas()),
    )
    sampling = asyncio.create_task(gauges.run(stop, OBSERVE_INTERVAL_S))
    draining = asyncio.create_task(_report_draining(stop, health))
    background = [sampling, draining]
    interval_s = wiring.settings.reconcile_interval_s
    if interval_s > 0:
        passes = build_reconciler(wiring).run(stop, interval_s)
        background.append(asyncio.create_task(passes))
    await worker.run(stop, grace_s=wiring.settings.job_lease_s)
    await asyncio.gather(*background)


async def _report_draining(stop: asyncio.Event, health: WorkerHealth) -> None:
    await stop.wait()
    await health.draining()


async def serve(settings: Settings) -> None:
    """Run one worker process until SIGTERM, traced if configured (core.runtime.tracing)."""
    with tracing.exporting(settings.otlp_endpoint, "tuning-worker"):
        await _serve(settings)


async def _serve(settings: Settings) -> None:
    metrics = Metrics.create()
    redis = connect(
        settings.redis_url,
        cluster=settings.redis_cluster,
        round_trips=metrics.redis_round_trips.inc,
    )
    tenants = TenantDirectory.watch(settings.tenants_file)
    async with upstream_session(settings) as http:
        with httpx.Client(timeout=settings.token_timeout_s) as token_http:
            wiring = WorkerWiring(settings, redis, tenants, http, token_http, metrics=metrics)
            await _run_until_stopped(wiring, build_worker(wiring))
    await redis.aclose()
    log.info("worker stopped")
