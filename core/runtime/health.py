"""gRPC health that follows Redis, shared by the API and the worker.

The named services are SERVING only while Redis answers (checked every few seconds)
and from `draining()` on NOT_SERVING. `liveness` says only that the process works: a
Redis outage must not make Kubernetes restart every replica, so it stays SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2

from core.redis.client import Redis

log = logging.getLogger(__name__)

LIVENESS = "liveness"
CHECK_INTERVAL_S = 2.0


class RedisHealth:
    """Keeps `names` of a health servicer in step with Redis."""

    def __init__(
        self,
        servicer: health_aio.HealthServicer,
        redis: Redis,
        names: Sequence[str],
        check_interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self._servicer = servicer
        self._redis = redis
        self._names = tuple(names)
        self._check_interval_s = check_interval_s
        self._stopping = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self.set_serving(await self._redis_answers())
        self._watcher = asyncio.create_task(self._watch())

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in self._names:
            await self._servicer.set(name, status)

    async def draining(self) -> None:
        """NOT_SERVING from now on, whatever Redis does (SIGTERM received)."""
        self._stopping.set()
        if self._watcher is not None:
            await self._watcher
        await self.set_serving(False)

    async def _redis_answers(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:  # noqa: BLE001 (any failure to answer means not serving)
            return False

    async def _watch(self) -> None:
        serving = True
        while not self._stopping.is_set():
            ok = await self._redis_answers()
            if ok != serving:
                serving = ok
                log.warning("redis %s: health %s", "answers" if ok else "unreachable", ok)
                await self.set_serving(ok)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._check_interval_s)
