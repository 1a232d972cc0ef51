"""The worker's own gRPC health endpoint, for its Kubernetes probes.

Like the API's (core.runtime.health): "" follows Redis and turns NOT_SERVING while the worker
drains; `liveness` stays SERVING while the process runs.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2_grpc

from core.redis.client import Redis
from core.runtime.health import RedisHealth


class WorkerHealth:
    """A small gRPC server with grpc.health.v1 only."""

    def __init__(self, redis: Redis, listen: str) -> None:
        self._server = grpc.aio.server()
        servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, self._server)
        self._health = RedisHealth(servicer, redis, ("",))
        self.port = self._server.add_insecure_port(listen)

    async def start(self) -> None:
        await self._server.start()
        await self._health.start()

    async def draining(self) -> None:
        """Report NOT_SERVING from now on (SIGTERM received)."""
        await self._health.draining()

    async def stop(self) -> None:
        await self.draining()
        await self._server.stop(0)
