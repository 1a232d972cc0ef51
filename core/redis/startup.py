"""Starting without Redis: both processes wait for it, and begin once it answers.

An API or a worker that starts while Redis is down (a node restarting, a rollout that
brings the pods up before the store) does not exit: it serves its health as NOT_SERVING
(`RedisStartup.passed` is one of its health conditions, core.runtime.health) and retries
the connection and the start-up checks, `check_redis`, after each failure waiting a
delay of `backoff_delays_s` (capped exponential, full jitter, so a fleet started at once
does not knock in step), with one warning line per failed attempt. Work begins as soon
as an attempt passes; SIGTERM during the wait ends it, and the process exits cleanly.

What waiting cannot fix is not retried. A Redis that may evict keys (maxmemory-policy
other than noeviction) or that refuses the configured credentials is an operator's
error: the process exits at once, with the remedy and without a traceback
(`SystemExit`), and Kubernetes shows a CrashLoopBackOff, which is what such a mistake
should look like.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Callable, Iterable, Iterator

from redis import exceptions as redis_errors

from core.errors import Unavailable
from core.redis.client import Redis, refuse_evicting_redis

log = logging.getLogger(__name__)

RETRY_BASE_S = 0.25
"""The cap of the first delay; each next one doubles it, up to RETRY_MAX_S."""
RETRY_MAX_S = 5.0
"""The longest wait between two attempts: a process is at most this late once Redis is up."""

WAITABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.RedisClusterException,
    Unavailable,
    OSError,
)
"""Failures that waiting can cure: Redis not listening yet, loading its data, a cluster
still forming. AUTH failures are ConnectionErrors too, but are refused (`_refuse_auth`)."""


def backoff_delays_s(
    base_s: float = RETRY_BASE_S, max_s: float = RETRY_MAX_S, rng: random.Random | None = None
) -> Iterator[float]:
    """Endless delays: the n-th uniform between 0 and min(max_s, base_s * 2**n)."""
    rng = rng or random.Random()
    for attempt in itertools.count():
        yield rng.uniform(0, min(max_s, base_s * 2 ** min(attempt, 32)))


async def check_redis(redis: Redis) -> None:
    """The start-up checks: Redis answers, and does not evict keys."""
    await redis.ping()
    await refuse_evicting_redis(redis)


class RedisStartup:
    """A process's wait for Redis; `passed` once the start-up checks have passed."""

    def __init__(self, redis: Redis, delays_s: Iterable[float] | None = None) -> None:
        """`delays_s`: the waits between attempts (default `backoff_delays_s()`, endless); a
        finite schedule gives up when it runs out (tests pass a few short waits)."""
        self._redis = redis
        self._delays_s = backoff_delays_s() if delays_s is None else delays_s
        self.passed = False

    def conditions(self) -> dict[str, Callable[[], bool]]:
        """The health condition (core.runtime.health) that holds once the checks passed."""
        return {"redis start-up checks": lambda: self.passed}

    async def wait(self, stop: asyncio.Event) -> bool:
        """Retry the checks until they pass (True) or `stop` is set first (False).

        Raises SystemExit if Redis is misconfigured, Unavailable if `delays_s` ran out.
        """
        delays_s = iter(self._delays_s)
        for attempt in itertools.count(1):
            failure = await self._failure()
            if failure is None:
                break
            delay_s = next(delays_s, None)
            if delay_s is None:
                raise Unavailable(f"Redis did not become ready in {attempt} attempts: {failure}")
            log.warning(
                "Redis not ready (attempt %d: %s); next attempt in %.1fs", attempt, failure, delay_s
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_s)
            if stop.is_set():
                return False
        if attempt > 1:
            log.info("Redis ready after %d attempts", attempt)
        self.passed = True
        return True

    async def _failure(self) -> str | None:
        """Why the checks do not pass yet, or None once they do."""
        try:
            await check_redis(self._redis)
        except WAITABLE as exc:
            _refuse_auth(exc)
            return _brief(exc)
        return None


def _refuse_auth(exc: BaseException) -> None:
    if isinstance(exc, redis_errors.AuthenticationError):
        raise SystemExit(f"Redis refused the credentials in TUNING_REDIS_URL: {_brief(exc)}")


def _brief(exc: BaseException) -> str:
    """One line naming the failure, without the client's advice or a traceback."""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}"[:200]
