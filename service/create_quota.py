"""The per-tenant create rate: a token bucket in Redis per tenant, shared by all replicas.

The bucket is spent by the job store's create script itself (core.redis.scripts.CREATE), in the
same step that stores a new job, so a client's retry of a request that already made its
job costs no token. Here: each tenant's rate, and the read-only check for `validate_only`;
a caller over its quota gets core.errors.CreateQuotaSpent.
"""

from __future__ import annotations

from core.errors import CreateQuotaSpent
from core.redis.admission import QuotasFor
from core.redis.client import Redis
from core.redis.job_store import CreateRate
from core.redis.keys import Keys
from core.redis.token_bucket import RedisTokenBucket


class CreateQuota:
    """CreateTuningJob calls per tenant per minute, from each tenant's quotas."""

    def __init__(self, redis: Redis, keys: Keys, quotas_for: QuotasFor) -> None:
        self._redis = redis
        self._keys = keys
        self._quotas_for = quotas_for

    def rate(self, tenant: str) -> CreateRate:
        """The tenant's create rate and burst (the tenants file may override the defaults)."""
        quotas = self._quotas_for(tenant)
        return CreateRate(quotas.creates_per_minute / 60, max(quotas.create_burst, 1))

    async def check(self, tenant: str) -> None:
        """CreateQuotaSpent if a create now would be refused; spends nothing."""
        rate = self.rate(tenant)
        bucket = RedisTokenBucket(
            self._redis,
            self._keys.tenant_create_bucket(tenant),
            rate_per_s=rate.per_s,
            burst=rate.burst,
            max_wait_s=0,
        )
        wait_ms = await bucket.wait_ms(take=False)
        if wait_ms < 0:
            per_minute = self._quotas_for(tenant).creates_per_minute
            raise CreateQuotaSpent(tenant, per_minute=per_minute, retry_after_s=-wait_ms / 1000)
