"""Wiring of the worker process: clients, credentials, provider, loop."""

from __future__ import annotations

import logging
import os

import httpx

from core.clock import system_clock
from core.keys import Keys
from core.redis_client import connect
from core.schedule import Schedule
from core.settings import Settings
from core.signals import stop_signals
from core.store import JobStore
from core.tenants import TenantDirectory
from worker.credentials import CredentialSource
from worker.gemini import GeminiClient, GeminiProvider
from worker.steps import Steps
from worker.worker import Worker

log = logging.getLogger(__name__)


def http_limits(settings: Settings) -> httpx.Limits:
    return httpx.Limits(
        max_connections=max(settings.worker_concurrency, 10),
        max_keepalive_connections=max(settings.worker_concurrency // 2, 5),
    )


async def run_worker(settings: Settings) -> None:
    """Run one worker process until SIGTERM."""
    redis = connect(settings.redis_url, cluster=settings.redis_cluster)
    keys = Keys(settings.redis_key_prefix)
    tenants = TenantDirectory.from_file(settings.tenants_file)
    timeout = httpx.Timeout(
        settings.upstream_timeout_s, connect=min(10.0, settings.upstream_timeout_s)
    )
    async with (
        httpx.AsyncClient(timeout=timeout, limits=http_limits(settings)) as http,
    ):
        with httpx.Client(timeout=timeout) as token_http:
            credentials = CredentialSource(tenants, settings.token_uri, token_http)
            provider = GeminiProvider(GeminiClient(http, settings.upstream_base_url))
            store = JobStore(redis, keys, system_clock)
            steps = Steps(store, provider, credentials.for_tenant, settings, system_clock)
            worker = Worker(store, Schedule(redis, keys), steps, settings)
            print(f"WORKER_READY pid={os.getpid()}", flush=True)
            async with stop_signals() as stop:
                await worker.run(stop, grace_s=settings.lease_s)
    await redis.aclose()
    log.info("worker stopped")
