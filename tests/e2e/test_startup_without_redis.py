"""Real API and worker processes started before their Redis (core.redis.startup).

They must come up, report NOT_SERVING, wait without a traceback, and begin work once a
redis-server listens on their port; a SIGTERM during the wait exits cleanly; a Redis
that may evict keys is refused at once, with the remedy.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.runtime.settings import Settings
from devstack.launcher import EmulatorOptions, Processes, TenantFiles, local_settings
from devstack.processes import Child
from devstack.redis_server import RedisServer
from devstack.tenants import LocalTenant
from tests.harness import State, job_spec
from tests.harness import test_settings as fast_settings
from tuning.v1 import tuning_service_pb2, tuning_service_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health_of(target: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # stubs typed for sync channels
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        return int(answer.status)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 (polling is the point)
            await asyncio.sleep(0.05)


async def health_is(target: str, wanted: int) -> bool:
    return await health_of(target) == wanted


def log_of(child: Child) -> str:
    return child.log_path.read_text()


@asynccontextmanager
async def processes_on(
    redis: RedisServer, work_dir: Path, prefix: str
) -> AsyncIterator[tuple[Processes, Settings, TenantFiles]]:
    """An emulator process, and settings for processes on `redis`'s port."""
    files = TenantFiles.write(work_dir, [LocalTenant("team-a")])
    async with Processes(work_dir) as processes:
        emulator = await processes.start_emulator(EmulatorOptions(), grants_file=files.grants_file)
        settings = local_settings(
            fast_settings(redis.url, prefix),
            redis_url=redis.url,
            tenant_files=files,
            emulator_url=emulator.url,
        )
        yield processes, settings, files


async def test_processes_started_before_redis_wait_for_it_then_work(
    tmp_path: Path, prefix: str
) -> None:
    with RedisServer() as redis:
        redis.crash()  # down before anything starts; it comes back on the same port
        async with processes_on(redis, tmp_path, prefix) as (processes, settings, files):
            api = await processes.start_api(settings)
            worker = await processes.start_worker(settings)
            stopped = await processes.start_worker(settings, name="stopped-while-waiting")
            worker_health = f"127.0.0.1:{worker.health_port}"
            for target in (api.target, worker_health):
                assert await health_of(target) == NOT_SERVING
                assert await health_of(target, "liveness") == SERVING

            async def retried() -> bool:
                return all(
                    log_of(c).count("Redis not ready") >= 2 for c in (api.child, worker.child)
                )

            await eventually(retried)
            assert await stopped.child.stop() == 0  # SIGTERM during the wait
            redis.restart()
            for target in (api.target, worker_health):
                await eventually(functools.partial(health_is, target, SERVING))
            stub = tuning_service_pb2_grpc.TuningServiceStub(grpc.aio.insecure_channel(api.target))
            auth = (("authorization", f"Bearer {files.tenants['team-a'].token}"),)
            request = tuning_service_pb2.CreateTuningJobRequest(tuning_job=job_spec())
            job = await stub.CreateTuningJob(request, metadata=auth)

            async def taken_up() -> bool:
                get = tuning_service_pb2.GetTuningJobRequest(name=job.name)
                state = (await stub.GetTuningJob(get, metadata=auth)).state
                return bool(state == State.RUNNING)

            await eventually(taken_up)
            for child in (api.child, worker.child, stopped.child):
                assert child.process.returncode in (None, 0)
                assert "Traceback" not in log_of(child)


async def test_a_redis_that_may_evict_keys_is_refused_at_once(tmp_path: Path, prefix: str) -> None:
    with RedisServer(maxmemory_policy="allkeys-lru") as redis:
        async with processes_on(redis, tmp_path, prefix) as (processes, settings, _):
            children = [
                (await processes.start_api(settings)).child,
                (await processes.start_worker(settings)).child,
            ]
            for child in children:
                async with asyncio.timeout(10):
                    assert await child.process.wait() == 1
                assert "maxmemory-policy is 'allkeys-lru'" in log_of(child)
                assert "Traceback" not in log_of(child)
