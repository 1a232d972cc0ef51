"""Wiring of the worker process: clients, credentials, provider, loop."""

from __future__ import annotations

import asyncio
import logging
import os

import httpx

from core.redis.admission import Admission, QuotasFor
from core.redis.client import Redis, connect, refuse_evicting_redis
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.schedule import Schedule
from core.redis.token_bucket import RedisTokenBucket, Unlimited
from core.runtime.clock import Clock, system_clock
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.runtime.signals import stop_signals
from core.security.credential_store import CredentialStore
from core.security.crypto import watch_keys
from core.security.tenants import TenantDirectory
from worker.credentials import CredentialSource
from worker.gauges import GaugeSampler
from worker.gemini import GeminiClient, GeminiProvider
from worker.gemini.client import Limiter
from worker.health import WorkerHealth
from worker.steps import Steps
from worker.sweep import Sweeper
from worker.worker import Worker

log = logging.getLogger(__name__)

RATE_LIMIT_MAX_WAIT_S = 2.0
OBSERVE_INTERVAL_S = 15.0


def http_limits(settings: Settings) -> httpx.Limits:
    return httpx.Limits(
        max_connections=max(settings.worker_concurrency, 10),
        max_keepalive_connections=max(settings.worker_concurrency // 2, 5),
    )


def upstream_limiter(settings: Settings, redis: Redis, keys: Keys) -> Limiter:
    """The fleet-wide token bucket, or no limit when the rate is 0."""
    if settings.upstream_rps <= 0:
        return Unlimited()
    return RedisTokenBucket(
        redis,
        keys,
        "upstream",
        rate_per_s=settings.upstream_rps,
        burst=settings.upstream_burst,
        max_wait_s=RATE_LIMIT_MAX_WAIT_S,
    )


def build_worker(
    settings: Settings,
    redis: Redis,
    tenants: TenantDirectory,
    http: httpx.AsyncClient,
    token_http: httpx.Client,
    *,
    clock: Clock = system_clock,
    quotas_for: QuotasFor | None = None,
    metrics: Metrics | None = None,
) -> Worker:
    """A worker wired to Redis, the Gemini API and the tenants' credentials."""
    keys = Keys(settings.redis_key_prefix)
    steps = build_steps(settings, redis, tenants, http, token_http, clock=clock, metrics=metrics)
    schedule = Schedule(redis, keys)
    quotas = quotas_for or tenants.quotas_for(settings.default_quotas())
    admission = Admission(redis, keys, schedule, quotas)
    sweeper = Sweeper(steps.store, schedule, admission, tenants.tenant_ids)
    return Worker(steps.store, schedule, steps, settings, sweeper=sweeper, admission=admission)


def build_steps(
    settings: Settings,
    redis: Redis,
    tenants: TenantDirectory,
    http: httpx.AsyncClient,
    token_http: httpx.Client,
    *,
    clock: Clock = system_clock,
    metrics: Metrics | None = None,
) -> Steps:
    """What a worker does to each job, wired to the Gemini API and the credentials."""
    keys = Keys(settings.redis_key_prefix)
    counted = metrics or Metrics.create()
    credentials = CredentialSource(
        tenants,
        settings.token_uri,
        token_http,
        store=CredentialStore(redis, keys),
        keys=watch_keys(settings.encryption_keys_file),
        recheck_s=settings.credential_recheck_s,
        on_refresh=lambda outcome: counted.token_refreshes.labels(outcome).inc(),
    )
    limiter = upstream_limiter(settings, redis, keys)
    client = GeminiClient(http, settings.upstream_base_url, limiter, counted)
    store = JobStore(redis, keys, clock)
    provider = GeminiProvider(client)
    return Steps(store, provider, credentials.for_tenant, settings, clock, metrics=counted)


async def _serve(
    settings: Settings, redis: Redis, tenants: TenantDirectory, worker: Worker, metrics: Metrics
) -> None:
    """Run the worker with its health endpoint, metrics and gauges until SIGTERM."""
    if settings.metrics_listen:
        metrics.serve(settings.metrics_listen)
    health = WorkerHealth(redis, settings.worker_health_listen)
    await health.start()
    keys = Keys(settings.redis_key_prefix)
    gauges = GaugeSampler(
        redis, keys, JobStore(redis, keys), metrics, tenants.tenant_ids, system_clock
    )
    print(f"WORKER_READY pid={os.getpid()} health_port={health.port}", flush=True)
    async with stop_signals() as stop:
        sampling = asyncio.create_task(gauges.run(stop, OBSERVE_INTERVAL_S))
        draining = asyncio.create_task(_report_draining(stop, health))
        await worker.run(stop, grace_s=settings.job_lease_s)
        await asyncio.gather(sampling, draining)
    await health.stop()


async def _report_draining(stop: asyncio.Event, health: WorkerHealth) -> None:
    await stop.wait()
    await health.draining()


async def run_worker(settings: Settings) -> None:
    """Run one worker process until SIGTERM."""
    redis = connect(settings.redis_url, cluster=settings.redis_cluster)
    await refuse_evicting_redis(redis)
    tenants = TenantDirectory.watch(settings.tenants_file)
    timeout = httpx.Timeout(
        settings.upstream_timeout_s, connect=min(10.0, settings.upstream_timeout_s)
    )
    async with httpx.AsyncClient(timeout=timeout, limits=http_limits(settings)) as http:
        with httpx.Client(timeout=settings.token_timeout_s) as token_http:
            metrics = Metrics.create()
            worker = build_worker(settings, redis, tenants, http, token_http, metrics=metrics)
            await _serve(settings, redis, tenants, worker, metrics)
    await redis.aclose()
    log.info("worker stopped")
