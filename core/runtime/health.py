"""gRPC health that follows Redis, shared by the API and the worker.

The named services are SERVING only while Redis answers and every extra condition
holds (checked every few seconds; both processes add that Redis passed their start-up
checks, core.redis.startup, and the API its tenants and keys files, which fail closed
when they break: core.security.secret_files), and from `draining()` on NOT_SERVING.
`liveness` says only that the process works: a Redis outage must not make Kubernetes
restart every replica, so it stays SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence

from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2
from prometheus_client import Gauge

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
        conditions: Mapping[str, Callable[[], bool]] | None = None,
        *,
        redis_up: Gauge | None = None,
    ) -> None:
        """`conditions`: by name, more checks that must hold for SERVING (a file is usable);
        `redis_up` is set to 1 or 0 by each check of Redis."""
        self._redis_up = redis_up
        self._servicer = servicer
        self._redis = redis
        self._conditions = dict(conditions or {})
        self._names = tuple(names)
        self._check_interval_s = check_interval_s
        self._stopping = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._serving = False

    async def start(self) -> None:
        await self._servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        self._serving = await self._redis_answers() and not self._failing()
        await self.set_serving(self._serving)
        self._watcher = asyncio.create_task(self._watch())

    async def check_now(self) -> None:
        """Check Redis and the conditions now, not at the next interval (one just changed)."""
        if self._stopping.is_set():
            return  # draining: NOT_SERVING whatever Redis says (`draining` sets it)
        answers, failing = await self._redis_answers(), self._failing()
        ok = answers and not failing
        if ok != self._serving:
            self._serving = ok
            why = ", ".join([*([] if answers else ["redis unreachable"]), *failing])
            log.warning("health %s%s", ok, f": {why}" if why else "")
            await self.set_serving(ok)

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

    def _failing(self) -> list[str]:
        """The names of the conditions that do not hold now."""
        return [name for name, holds in self._conditions.items() if not holds()]

    async def _redis_answers(self) -> bool:
        try:
            answers = bool(await self._redis.ping())
        except Exception:  # noqa: BLE001 (any failure to answer means not serving)
            answers = False
        if self._redis_up is not None:
            self._redis_up.set(1 if answers else 0)
        return answers

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            await self.check_now()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._check_interval_s)
