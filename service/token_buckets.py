"""Token buckets keyed by caller, in one replica's memory: the arithmetic the receive
budget (service.receive_budget) and the refusal brake (service.refusal_brake) share.

Each key's bucket fills at `rate` tokens a second up to `burst`. A take never fails: it
may leave the bucket in debt, down to `max_debt`, and the debt in seconds is what a
caller of that key is made to wait. Keys are principals of the tenants file (and one
for the unauthenticated), so the map stays as small as that file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One bucket per key (`rate` <= 0: no limit, never in debt)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_debt: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self._burst = max(burst, 1.0)
        self._max_debt = max_debt
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, amount: float) -> None:
        """Spend `amount` of `key`'s tokens, going into debt if need be."""
        if self.rate > 0:
            bucket = self._bucket(key)
            bucket.tokens = max(bucket.tokens - amount, -self._max_debt)

    def debt_s(self, key: str) -> float:
        """How long until `key`'s bucket is out of debt; 0 if it is not in debt."""
        if self.rate <= 0 or key not in self._buckets:
            return 0.0
        tokens = self._bucket(key).tokens
        return -tokens / self.rate if tokens < 0 else 0.0

    def _bucket(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        return bucket
