"""The worker's own gRPC health endpoint, for its Kubernetes probes.

SERVING while Redis answers and the worker is not stopping; NOT_SERVING otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.redis_client import Redis

CHECK_INTERVAL_S = 2.0
LIVENESS = "liveness"


class WorkerHealth:
    """A small gRPC server with grpc.health.v1 only."""

    def __init__(self, redis: Redis, listen: str) -> None:
        self._redis = redis
        self._server = grpc.aio.server()
        self._health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self.port = self._server.add_insecure_port(listen)
        self._stopping = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._server.start()
        # `liveness` is the process itself; "" also needs Redis (see service.server).
        await self._health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                ok = bool(await self._redis.ping())
            except Exception:  # noqa: BLE001 (any failure to answer means not serving)
                ok = False
            await self._set(ok)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), CHECK_INTERVAL_S)

    async def _set(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set("", status)

    async def draining(self) -> None:
        """Report NOT_SERVING from now on (SIGTERM received)."""
        self._stopping.set()
        if self._watcher is not None:
            await self._watcher
        await self._set(False)

    async def stop(self) -> None:
        await self.draining()
        await self._server.stop(0)
