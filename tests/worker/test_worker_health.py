"""The worker's gRPC health endpoint and its sampled gauges."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.redis.client import Redis
from core.redis.keys import Keys
from core.runtime import logs
from tests.harness import State, System
from worker.gauges import GaugeSampler
from worker.health import WorkerHealth


async def test_health_is_serving_until_the_worker_drains(redis: Redis) -> None:
    health = WorkerHealth(redis, "127.0.0.1:0")
    await health.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{health.port}") as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest()
            assert (await stub.Check(request)).status == health_pb2.HealthCheckResponse.SERVING
            await health.draining()
            assert (await stub.Check(request)).status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await health.stop()


async def test_queue_gauges_follow_the_queues(api_only: System) -> None:
    for _ in range(3):
        await api_only.create()
    keys = Keys(api_only.settings.redis_key_prefix)
    m = api_only.worker_metrics
    gauges = GaugeSampler(api_only.redis, keys, api_only.store, m, lambda: ["team-a"], time.time)
    await gauges.sample()
    assert m.registry.get_sample_value("tuning_queue_depth", {"tenant": "team-a"}) == 3
    assert m.registry.get_sample_value("tuning_jobs", {"tenant": "team-a", "state": "QUEUED"}) == 3
    age = m.registry.get_sample_value("tuning_oldest_queued_job_age_seconds", {"tenant": "team-a"})
    assert age is not None and age >= 0


async def test_job_gauges_count_running_jobs_and_their_oldest_status(system: System) -> None:
    jobs = [await system.create() for _ in range(3)]
    for job in jobs:
        await system.wait_for(job.name, {State.RUNNING})
    keys = Keys(system.settings.redis_key_prefix)
    m = system.worker_metrics
    later = time.time() + 100.0
    gauges = GaugeSampler(system.redis, keys, system.store, m, lambda: ["team-a"], lambda: later)
    await gauges.sample()
    assert m.registry.get_sample_value("tuning_jobs", {"tenant": "team-a", "state": "RUNNING"}) == 3
    assert m.registry.get_sample_value("tuning_jobs", {"tenant": "team-a", "state": "QUEUED"}) == 0
    age = m.registry.get_sample_value("tuning_status_cache_age_seconds", {"tenant": "team-a"})
    assert age is not None and 100.0 <= age < 100.0 + 15.0


async def test_worker_log_lines_name_the_tenant_and_the_job(
    system: System, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.setFormatter(logs.JsonFormatter())
    caplog.handler.addFilter(logs.ContextFilter())
    job = await system.create()
    await system.wait_for(job.name, {State.RUNNING})
    lines = [
        json.loads(caplog.handler.format(r)) for r in caplog.records if r.name.startswith("worker")
    ]
    about_job = [line for line in lines if "submitted" in line["msg"]]
    assert about_job, "the worker logged the submission"
    assert all(line["tenant"] == "team-a" and line["job"] == job.name for line in about_job)
