"""The worker's own gRPC health endpoint, for its Kubernetes probes.

Like the API's (core.runtime.health): "" follows Redis, is NOT_SERVING until Redis has
passed the start-up checks (core.redis.startup) and while the worker drains; `liveness`
stays SERVING while the process runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2_grpc
from prometheus_client import Gauge

from core.redis.client import Redis
from core.runtime.health import RedisHealth


class WorkerHealth:
    """A small gRPC server with grpc.health.v1 only."""

    def __init__(
        self,
        redis: Redis,
        listen: str,
        *,
        conditions: Mapping[str, Callable[[], bool]] | None = None,
        redis_up: Gauge | None = None,
    ) -> None:
        """`conditions`: by name, more checks that must hold for SERVING (RedisHealth's);
        `redis_up` follows each check of Redis."""
        self._server = grpc.aio.server()
        servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, self._server)
        self._health = RedisHealth(servicer, redis, ("",), conditions=conditions, redis_up=redis_up)
        self.port = self._server.add_insecure_port(listen)

    async def start(self) -> None:
        await self._server.start()
        await self._health.start()

    async def check_now(self) -> None:
        """Follow a change of Redis or of a condition at once."""
        await self._health.check_now()

    async def draining(self) -> None:
        """Report NOT_SERVING from now on (SIGTERM received)."""
        await self._health.draining()

    async def stop(self) -> None:
        await self.draining()
        await self._server.stop(0)
