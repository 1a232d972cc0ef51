"""The per-tenant create rate: a token bucket in Redis per tenant, shared by all replicas.

The bucket is spent by the job store's create script itself (core.redis.scripts.CREATE), in the
same step that stores a new job, so a client's retry of a request that already made its
job costs no token. Here: each tenant's rate, the read-only check for `validate_only`,
and the error a caller over its quota gets.
"""

from __future__ import annotations

from core.errors import ResourceExhausted
from core.redis.admission import QuotasFor
from core.redis.client import Redis, translated_errors
from core.redis.job_store import CreateRate
from core.redis.keys import Keys
from core.redis.scripts import TOKEN_BUCKET


class CreateQuota:
    """CreateTuningJob calls per tenant per minute, from each tenant's quotas."""

    def __init__(self, redis: Redis, keys: Keys, quotas_for: QuotasFor) -> None:
        self._keys = keys
        self._quotas_for = quotas_for
        self._peek = redis.register_script(TOKEN_BUCKET)

    def rate(self, tenant: str) -> CreateRate:
        """The tenant's create rate and burst (the tenants file may override the defaults)."""
        quotas = self._quotas_for(tenant)
        return CreateRate(quotas.creates_per_minute / 60, max(quotas.create_burst, 1))

    async def check(self, tenant: str) -> None:
        """RESOURCE_EXHAUSTED if a create now would be refused; spends nothing."""
        rate = self.rate(tenant)
        args = [rate.per_s, rate.burst, 0, 0]  # no wait allowed, cost 0
        with translated_errors():
            wait_ms = int(
                await self._peek(keys=[self._keys.tenant_create_bucket(tenant)], args=args)
            )
        if wait_ms < 0:
            raise self.exhausted(tenant, -wait_ms / 1000)

    def exhausted(self, tenant: str, retry_after_s: float) -> ResourceExhausted:
        """The error for a create over the quota, with RetryInfo and QuotaFailure."""
        limit = self._quotas_for(tenant).creates_per_minute
        error = ResourceExhausted(
            f"tenant {tenant!r} may create {limit:g} tuning jobs per minute; "
            f"retry in {retry_after_s:.1f}s",
            retry_after_s=retry_after_s,
            reason="CREATE_RATE_EXCEEDED",
        )
        error.subject = f"tenant:{tenant}"
        return error
