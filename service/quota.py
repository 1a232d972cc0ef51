"""The per-tenant create rate: a token bucket in Redis per tenant, shared by all replicas."""

from __future__ import annotations

from core.admission import QuotasFor
from core.errors import ResourceExhausted
from core.keys import Keys
from core.quotas import TenantQuotas
from core.ratelimit import RateLimited, RedisTokenBucket
from core.redis_client import Redis


class CreateQuota:
    """CreateTuningJob calls per tenant per minute, from each tenant's quotas."""

    def __init__(self, redis: Redis, keys: Keys, quotas_for: QuotasFor) -> None:
        self._redis = redis
        self._keys = keys
        self._quotas_for = quotas_for
        # One bucket per tenant and quota: building one registers its script, which the
        # hot path need not repeat; a changed quota (tenants file) makes a new one.
        self._buckets: dict[tuple[str, TenantQuotas], RedisTokenBucket] = {}

    async def take(self, tenant: str) -> None:
        """Spend one create; RESOURCE_EXHAUSTED with RetryInfo and QuotaFailure if none is left."""
        try:
            await self._bucket(tenant).acquire()
        except RateLimited as exc:
            raise self._exhausted(tenant, exc.retry_after_s) from None

    async def check(self, tenant: str) -> None:
        """As `take`, without spending (for validate_only)."""
        try:
            await self._bucket(tenant).check()
        except RateLimited as exc:
            raise self._exhausted(tenant, exc.retry_after_s) from None

    def _bucket(self, tenant: str) -> RedisTokenBucket:
        quotas = self._quotas_for(tenant)
        bucket = self._buckets.get((tenant, quotas))
        if bucket is None:
            bucket = self._new_bucket(tenant, quotas)
            self._buckets[(tenant, quotas)] = bucket
        return bucket

    def _new_bucket(self, tenant: str, quotas: TenantQuotas) -> RedisTokenBucket:
        return RedisTokenBucket(
            self._redis,
            self._keys,
            f"create.{tenant}",
            rate_per_s=quotas.creates_per_minute / 60,
            burst=quotas.create_burst,
            max_wait_s=0,
        )

    def _exhausted(self, tenant: str, retry_after_s: float) -> ResourceExhausted:
        limit = self._quotas_for(tenant).creates_per_minute
        error = ResourceExhausted(
            f"tenant {tenant!r} may create {limit:g} tuning jobs per minute; "
            f"retry in {retry_after_s:.1f}s",
            retry_after_s=retry_after_s,
            reason="CREATE_RATE_EXCEEDED",
        )
        error.subject = f"tenant:{tenant}"
        return error
