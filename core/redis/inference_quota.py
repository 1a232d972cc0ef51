"""A tenant's inference limits in Redis, shared by every API replica, and the upstreams'
hold-offs.

Per tenant, three keys in its hash tag (core.redis.keys): a token bucket of generate calls
per minute, a token bucket of tokens per minute (counted in tokens), and a sorted set of the
calls in flight scored by when each stops counting. A generate costs two script calls:

- GENERATE_ADMIT, before the upstream request: drop the calls whose lease has passed, count
  the rest against `max_concurrent`, check a call's worth in the request bucket and the
  call's token estimate in the token bucket; only if all three pass, take from both buckets
  and add the call. One atomic step, so two replicas can never both take the last slot.
- GENERATE_SETTLE, after the answer (or the stream's end, or a failure): give the call's
  slot back and put the difference between the tokens the upstream counted and the estimate
  taken on the token bucket, which may put it below zero: a debt that later calls wait out.
  It also counts the call in the tenant's usage of the month (core.domain.usage).

Each bucket holds a minute's worth (at least one call) and refills evenly; a missing key is
a full bucket, so every key expires once it would be full again. A limit of 0 is no limit,
and its key is never touched.

The hold-off of an upstream (`hold`, `held_ms`) is a string with a TTL in the upstream's
own slot: it cannot join a tenant's keys in one script on Redis Cluster, so it is a second
key read, which service.inference_limits caches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.domain.usage import USAGE_RETENTION_S, month_of
from core.errors import GenerateQuotaExceeded
from core.redis.client import Redis, translated_errors
from core.redis.keys import Keys
from core.redis.scripts import (
    NOW_MS,
    USAGE_STEP,
    Script,
    ScriptArg,
    ScriptCall,
    Scripts,
    named_scripts,
)
from core.runtime.clock import Clock, system_clock

CONCURRENCY_RETRY_S = 1.0
"""The RetryInfo of a call refused for the tenant's calls in flight: when one ends is not
known, and calls are short."""


class GenerateQuota(StrEnum):
    """Which of a tenant's generate limits refused a call (its TenantQuotas field)."""

    REQUESTS_PER_MINUTE = "generate_requests_per_minute"
    TOKENS_PER_MINUTE = "generate_tokens_per_minute"
    MAX_CONCURRENT = "generate_max_concurrent"


_REFUSED_BY = {
    1: GenerateQuota.REQUESTS_PER_MINUTE,
    2: GenerateQuota.TOKENS_PER_MINUTE,
    3: GenerateQuota.MAX_CONCURRENT,
}


@dataclass(frozen=True)
class GenerateLimits:
    """A tenant's generate limits (0: no limit)."""

    requests_per_minute: float
    tokens_per_minute: float
    max_concurrent: int

    @property
    def none(self) -> bool:
        """No limit at all: nothing to admit or settle."""
        return not (self.requests_per_minute or self.tokens_per_minute or self.max_concurrent)

    def of(self, quota: GenerateQuota) -> float:
        """The value of one limit."""
        values = {
            GenerateQuota.REQUESTS_PER_MINUTE: self.requests_per_minute,
            GenerateQuota.TOKENS_PER_MINUTE: self.tokens_per_minute,
            GenerateQuota.MAX_CONCURRENT: float(self.max_concurrent),
        }
        return values[quota]


# A bucket that holds `capacity` and refills `per_minute` evenly, for the scripts below;
# needs NOW_MS first. level() is what it holds now; keep() writes a new level, the key
# kept until it would be full again (a missing key is a full bucket).
_BUCKET = """
local function level(key, per_minute, capacity)
  local f = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(f[1]) or capacity
  local ts = tonumber(f[2]) or now
  return math.min(capacity, tokens + math.max(0, now - ts) * per_minute / 60000)
end
local function keep(key, per_minute, capacity, tokens)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil((capacity - tokens) * 60000 / per_minute) + 1000)
end
"""

# Admit one generate call, or say which limit refuses it (see the module docstring).
# Returns {0, tokens taken} if admitted, else {1, ms} (calls per minute), {2, ms} (tokens
# per minute; ms until the bucket holds the estimate) or {3, 0} (calls in flight).
GENERATE_ADMIT = Script(
    """
local requests_key = KEYS[1]
local tokens_key = KEYS[2]
local calls_key = KEYS[3]
local requests_per_minute = tonumber(ARGV[1])
local tokens_per_minute = tonumber(ARGV[2])
local max_concurrent = tonumber(ARGV[3])
local estimate = tonumber(ARGV[4])
local call_id = ARGV[5]
local lease_ms = tonumber(ARGV[6])
"""
    + NOW_MS
    + _BUCKET
    + """
if max_concurrent > 0 then
  redis.call('ZREMRANGEBYSCORE', calls_key, '-inf', now)
  if redis.call('ZCARD', calls_key) >= max_concurrent then return {3, 0} end
end
local request_capacity = math.max(1, requests_per_minute)
local requests, tokens, need = 0, 0, 0
if requests_per_minute > 0 then
  requests = level(requests_key, requests_per_minute, request_capacity)
  if requests < 1 then
    return {1, math.ceil((1 - requests) * 60000 / requests_per_minute)}
  end
end
if tokens_per_minute > 0 then
  need = math.min(estimate, tokens_per_minute)
  tokens = level(tokens_key, tokens_per_minute, tokens_per_minute)
  if tokens < need then
    return {2, math.ceil((need - tokens) * 60000 / tokens_per_minute)}
  end
  keep(tokens_key, tokens_per_minute, tokens_per_minute, tokens - need)
end
if requests_per_minute > 0 then
  keep(requests_key, requests_per_minute, request_capacity, requests - 1)
end
if max_concurrent > 0 then
  redis.call('ZADD', calls_key, now + lease_ms, call_id)
  if redis.call('PTTL', calls_key) < lease_ms + 1000 then
    redis.call('PEXPIRE', calls_key, lease_ms + 1000)
  end
end
return {0, need}
""",
)


def generate_admit_call(
    *,
    requests_key: str,
    tokens_key: str,
    calls_key: str,
    limits: GenerateLimits,
    estimate_tokens: int,
    call_id: str,
    lease_ms: int,
) -> ScriptCall:
    """GENERATE_ADMIT."""
    keys = [requests_key, tokens_key, calls_key]
    args: list[ScriptArg] = [limits.requests_per_minute, limits.tokens_per_minute]
    args += [limits.max_concurrent, estimate_tokens, call_id, lease_ms]
    return ScriptCall(GENERATE_ADMIT, keys, args)


# A call's end: its slot given back, and `debit_tokens` (what the upstream counted less what
# the admission took; below zero gives tokens back) put on the token bucket, which may go
# below zero. The call is counted in its tenant's usage of the month (`usage_key`, kept
# `usage_ttl_ms`; core.domain.usage): one request, and the prompt and candidate tokens
# the upstream counted. Returns 1.
GENERATE_SETTLE = Script(
    """
local tokens_key = KEYS[1]
local calls_key = KEYS[2]
local usage_key = KEYS[3]
local tokens_per_minute = tonumber(ARGV[1])
local debit_tokens = tonumber(ARGV[2])
local call_id = ARGV[3]
local prompt_tokens = tonumber(ARGV[4])
local candidate_tokens = tonumber(ARGV[5])
local usage_ttl_ms = tonumber(ARGV[6])
"""
    + NOW_MS
    + _BUCKET
    + USAGE_STEP
    + """
count_usage(usage_key, usage_ttl_ms, 'generate_requests', 1,
            'generate_prompt_tokens', prompt_tokens, 'generate_candidate_tokens', candidate_tokens)
redis.call('ZREM', calls_key, call_id)
if tokens_per_minute > 0 and debit_tokens ~= 0 then
  local tokens = level(tokens_key, tokens_per_minute, tokens_per_minute)
  tokens = math.min(tokens_per_minute, tokens - debit_tokens)
  keep(tokens_key, tokens_per_minute, tokens_per_minute, tokens)
end
return 1
""",
)


def generate_settle_call(
    *,
    tokens_key: str,
    calls_key: str,
    usage_key: str,
    tokens_per_minute: float,
    debit_tokens: int,
    call_id: str,
    prompt_tokens: int,
    candidate_tokens: int,
    usage_ttl_ms: int,
) -> ScriptCall:
    """GENERATE_SETTLE."""
    args: list[ScriptArg] = [tokens_per_minute, debit_tokens, call_id]
    args += [prompt_tokens, candidate_tokens, usage_ttl_ms]
    return ScriptCall(GENERATE_SETTLE, [tokens_key, calls_key, usage_key], args)


# Hold an upstream off for `hold_ms` from now; never shortens a longer hold. Returns 1.
HOLD_OFF = Script(
    """
local hold_key = KEYS[1]
local hold_ms = tonumber(ARGV[1])
if redis.call('PTTL', hold_key) < hold_ms then
  redis.call('SET', hold_key, '1', 'PX', hold_ms)
end
return 1
""",
)


def hold_off_call(*, hold_key: str, hold_ms: int) -> ScriptCall:
    """HOLD_OFF."""
    return ScriptCall(HOLD_OFF, [hold_key], [hold_ms])


class InferenceQuota:
    """The tenants' generate limits and the upstreams' hold-offs, in Redis."""

    def __init__(self, redis: Redis, keys: Keys, clock: Clock = system_clock) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock
        self._scripts = Scripts(redis)

    async def admit(
        self,
        tenant: str,
        limits: GenerateLimits,
        *,
        call_id: str,
        estimate_tokens: int,
        lease_ms: int,
    ) -> int:
        """Admit the call `call_id` (in flight for at most `lease_ms`): the tokens taken
        for it (at most a minute's worth), or GenerateQuotaExceeded naming the limit."""
        call = generate_admit_call(
            requests_key=self._keys.tenant_generate_requests(tenant),
            tokens_key=self._keys.tenant_generate_tokens(tenant),
            calls_key=self._keys.tenant_generate_calls(tenant),
            limits=limits,
            estimate_tokens=estimate_tokens,
            call_id=call_id,
            lease_ms=lease_ms,
        )
        refused, value = (int(v) for v in await self._scripts.run(call))
        if refused:
            quota = _REFUSED_BY[refused]
            wait_s = value / 1000 if value else CONCURRENCY_RETRY_S
            raise GenerateQuotaExceeded(
                tenant, quota=quota, limit=limits.of(quota), retry_after_s=wait_s
            )
        return value

    async def settle(
        self,
        tenant: str,
        limits: GenerateLimits,
        *,
        call_id: str,
        debit_tokens: int,
        prompt_tokens: int = 0,
        candidate_tokens: int = 0,
    ) -> None:
        """The call's end: its slot back, `debit_tokens` more (or fewer) tokens spent, and
        the call counted in the tenant's usage of the month with the upstream's counts."""
        call = generate_settle_call(
            tokens_key=self._keys.tenant_generate_tokens(tenant),
            calls_key=self._keys.tenant_generate_calls(tenant),
            usage_key=self._keys.tenant_usage(tenant, month_of(self._clock())),
            tokens_per_minute=limits.tokens_per_minute,
            debit_tokens=debit_tokens,
            call_id=call_id,
            prompt_tokens=prompt_tokens,
            candidate_tokens=candidate_tokens,
            usage_ttl_ms=USAGE_RETENTION_S * 1000,
        )
        await self._scripts.run(call)

    async def hold(self, upstream: str, hold_ms: int) -> None:
        """No generate call goes to `upstream` for `hold_ms` (from any replica)."""
        await self._scripts.run(
            hold_off_call(hold_key=self._keys.upstream_hold_off(upstream), hold_ms=hold_ms)
        )

    async def held_ms(self, upstream: str) -> int:
        """How long `upstream` is held off still (0: not held)."""
        with translated_errors():
            left: Any = await self._redis.pttl(self._keys.upstream_hold_off(upstream))
        return max(int(left), 0)


named_scripts(globals())
