"""The secret that signs ListTuningJobs page tokens, shared by every API replica.

A token one replica issued must be accepted by all the others, so the key cannot be
drawn per process. It is a random 32-byte value kept in Redis under its own key (its
own hash slot, `Keys.page_token_key`), created with SET NX by whichever replica first
needs it: every replica that races to create it then reads back the one value that
won. Each process reads it once and keeps it; it never changes while a replica runs.
Deleting it by hand rotates it for replicas started afterwards, and tokens signed with
the old value are then refused as invalid (a caller starts its listing again).
"""

from __future__ import annotations

import secrets

from core.errors import Unavailable
from core.redis.client import Redis, translated_errors
from core.redis.keys import Keys

SECRET_BYTES = 32


class PageTokenKey:
    """The page-token signing secret, read from Redis on first use and cached."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._secret: bytes | None = None

    async def secret(self) -> bytes:
        """The 32-byte secret, created in Redis if no replica has made it yet.

        Concurrent first calls need no lock: each one's SET NX either makes the value or
        finds it made, and all read back the same bytes.
        """
        if self._secret is None:
            self._secret = await self._load()
        return self._secret

    async def _load(self) -> bytes:
        key = self._keys.page_token_key()
        with translated_errors():
            await self._redis.set(key, secrets.token_bytes(SECRET_BYTES), nx=True)
            stored = await self._redis.get(key)
        if not isinstance(stored, bytes) or len(stored) != SECRET_BYTES:
            # Deleted between the two reads (a retry re-creates it), or written by hand
            # with the wrong size (deleting it lets a replica create a proper one).
            raise Unavailable("the page-token key is missing; retry shortly", retry_after_s=1.0)
        return stored
