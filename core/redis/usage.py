"""Reads of each tenant's usage per month (core.domain.usage), for the UsageService and the
worker's gauges.

The counts are written by the scripts at each event (CREATE, SAVE, GENERATE_SETTLE), never
here: this module only reads the tenant-month hashes (`Keys.tenant_usage`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.domain.usage import MonthUsage, UsageField
from core.redis.client import Redis, text, translated_errors
from core.redis.keys import Keys


class UsageReader:
    """Reads tenants' usage by month."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def month(self, tenant: str, month: str) -> MonthUsage:
        """The tenant's usage in `month` ("YYYY-MM"); zeros where nothing was counted."""
        return (await self.months([tenant], month))[0]

    async def months(self, tenants: Sequence[str], month: str) -> list[MonthUsage]:
        """Each of `tenants`' usage in `month`, in their order, in one round trip."""
        with translated_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for tenant in tenants:
                    pipe.hgetall(self._keys.tenant_usage(tenant, month))
                raw: list[dict[Any, Any]] = await pipe.execute()
        return [_usage(t, month, fields) for t, fields in zip(tenants, raw, strict=True)]


def _usage(tenant: str, month: str, raw: dict[Any, Any]) -> MonthUsage:
    known = {f.value for f in UsageField}
    counts = {text(k): int(v) for k, v in raw.items() if text(k) in known}
    return MonthUsage(tenant, month, **counts)
