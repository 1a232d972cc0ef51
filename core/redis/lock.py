"""A fleet-wide lock: one holder at a time, for work only one worker should do at once.

Taken with `SET key token NX PX lease`; the random token says who holds it, so renewing
and giving it back are compare-and-set scripts (RENEW_LOCK, RELEASE_LOCK in
core.redis.scripts): a holder whose lease ran out, and whose lock another worker then
took, can neither extend nor delete its successor's. A holder learns that it lost the lock
only when a renewal fails, so whatever it does outside Redis is fenced by the lease
itself (worker.fence), measured from when each take or renewal was sent.
"""

from __future__ import annotations

import secrets

from core.redis.client import Redis, translated_errors
from core.redis.scripts import Scripts, release_lock_call, renew_lock_call


class FleetLock:
    """The lock stored at `key`."""

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self._key = key
        self._scripts = Scripts(redis)

    async def acquire(self, lease_s: float) -> str | None:
        """Take the lock for `lease_s`; its token, or None if another holder has it."""
        token = secrets.token_hex(16)
        with translated_errors():
            taken = await self._redis.set(self._key, token, nx=True, px=_ms(lease_s))
        return token if taken else None

    async def renew(self, token: str, lease_s: float) -> bool:
        """Hold the lock `lease_s` more from now; False if `token` no longer holds it."""
        call = renew_lock_call(lock_key=self._key, token=token, lease_ms=_ms(lease_s))
        return bool(await self._scripts.run(call))

    async def release(self, token: str) -> bool:
        """Give the lock back; False if `token` no longer held it."""
        return bool(await self._scripts.run(release_lock_call(lock_key=self._key, token=token)))


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)
