"""Per-tenant inference limits around each generate call, and the upstreams' 429s honoured
by the whole fleet.

`InferenceLimits.call` wraps one upstream generate request (service.generation):

1. The upstream's hold-off: if the upstream answered a generate 429 lately, to this replica
   or any other, the call is refused at once (UpstreamHeldOff, RetryInfo the time left)
   and nothing is sent. An upstream is the Gemini API for one tenant (each tenant calls it
   with its own credential, so its own project's quota: one tenant's 429 says nothing of
   another's) or a Vertex AI project's location (whose quota every tenant placed there
   shares), both read from the request path. A hold is a Redis key in the upstream's own
   slot, which cannot join a tenant's keys in one script on Redis Cluster: so each replica
   reads it at most every HOLD_OFF_READ_S per upstream and remembers it (a hold it knows of
   is not read again until it ends; holds never shorten). Another replica's 429 is thus
   honoured here within HOLD_OFF_READ_S; this replica's own at once.
2. The tenant's limits (core.redis.inference_quota, one script): calls per minute, tokens
   per minute and calls in flight; refused: GenerateQuotaExceeded naming the limit.
3. The call itself, then its settlement: one script call, run as a task of its own once the
   call has its answer, so that the answer does not wait for it and a cancelled call or a
   stream its caller closed still gives its slot back (the API awaits the settlements
   still running when it stops). The settlement also counts the call in its tenant's usage
   of the month (core.domain.usage), so every admitted call settles, limits or none.

Tokens. The upstream says how many tokens a call used only after it (`usage_metadata`, on a
stream's last chunk). So a call is admitted on an estimate, the prompt's characters / 4
(at least 1, and at most a minute's worth, so that any one call can pass a full bucket),
which the admission takes from the bucket; the settlement puts the difference between the
upstream's `total_token_count` and that estimate on the bucket (a call that reports no usage,
a failed one included, costs its estimate). A long answer may so put the bucket in debt:
later calls wait until it has refilled to their estimate. Concurrent calls each hold their
own estimate, so a burst of them cannot all pass an almost empty bucket.

A call in flight counts against the tenant's concurrency until it settles, or at most until
its lease (the call's deadline, capped at TUNING_GENERATE_SLOT_LEASE_S) if its replica died.

Metrics: calls by tenant, provider kind, method and outcome (refusals included); tokens by
tenant and kind (prompt, candidates); latency of admitted calls by tenant and method. Never
by model: a job's name is unbounded, a tenant (from the tenants file) is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from google.rpc import code_pb2

from core.domain.providers import ProviderKind
from core.domain.quotas import QuotasFor
from core.errors import Reason, Retryable, TuningError, UpstreamError, UpstreamHeldOff
from core.redis.inference_quota import GenerateLimits, InferenceQuota
from core.runtime.deadline import remaining_s
from core.runtime.metrics import Metrics
from core.upstream_http import DEFAULT_HOLD_OFF_S
from tuning.v1 import generation_service_pb2 as gen

log = logging.getLogger(__name__)

HOLD_OFF_READ_S = 0.25
"""How often a replica reads an upstream's hold-off from Redis, at most (per upstream)."""
MAX_HOLD_OFF_S = 300.0
"""The longest hold-off recorded, whatever a 429 asked for."""
MAX_KNOWN_UPSTREAMS = 4096
"""Upstreams whose hold-off a replica remembers (tenants and their projects: bounded)."""
CHARS_PER_TOKEN = 4
"""The estimate of a prompt's tokens: its characters / 4 (Google's rule of thumb)."""
_VERTEX_PATH = re.compile(r"/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/")


def upstream_of(tenant: str, path: str) -> tuple[ProviderKind, str]:
    """The provider kind of an upstream request path, and the upstream whose quota it
    spends (the hold-off's key; see the module docstring)."""
    found = _VERTEX_PATH.search(path)
    if found is None:
        return ProviderKind.GEMINI_API, f"{ProviderKind.GEMINI_API}:{tenant}"
    return ProviderKind.VERTEX, f"{ProviderKind.VERTEX}:{found['project']}:{found['location']}"


def estimate_tokens(request: gen.GenerateContentRequest) -> int:
    """The request's prompt tokens, estimated before the upstream counts them."""
    contents = [*request.contents, request.system_instruction]
    chars = sum(len(part.text) for content in contents for part in content.parts)
    return max(1, chars // CHARS_PER_TOKEN)


def used_tokens(usage: gen.UsageMetadata) -> int:
    """The tokens the upstream counted for a call (0: it said nothing)."""
    return usage.total_token_count or usage.prompt_token_count + usage.candidates_token_count


class UpstreamHolds:
    """What this replica knows of the upstreams' hold-offs (see the module docstring)."""

    def __init__(
        self, quota: InferenceQuota, *, read_s: float, monotonic: Callable[[], float]
    ) -> None:
        self._quota = quota
        self._read_s = read_s
        self._monotonic = monotonic
        self._known: dict[str, tuple[float, float]] = {}
        """upstream -> (when read, monotonic; held until, monotonic)."""

    async def check(self, upstream: str) -> None:
        """UpstreamHeldOff if `upstream` is held off now."""
        now = self._monotonic()
        read_at, until = self._known.get(upstream, (-self._read_s, now))
        if until <= now and now - read_at >= self._read_s:
            held_s = await self._quota.held_ms(upstream) / 1000
            now = self._monotonic()
            until = now + held_s
            self._remember(upstream, now, until)
        if until > now:
            raise UpstreamHeldOff(upstream, retry_after_s=until - now)

    async def hold(self, upstream: str, delay_s: float) -> None:
        """The upstream answered 429: hold it off `delay_s`, here at once and fleet-wide."""
        delay_s = min(delay_s or DEFAULT_HOLD_OFF_S, MAX_HOLD_OFF_S)
        now = self._monotonic()
        self._remember(upstream, now, now + delay_s)
        await self._quota.hold(upstream, int(delay_s * 1000))

    def _remember(self, upstream: str, read_at: float, until: float) -> None:
        self._known.pop(upstream, None)
        if len(self._known) >= MAX_KNOWN_UPSTREAMS:  # the oldest read goes
            self._known.pop(next(iter(self._known)))
        self._known[upstream] = (read_at, until)


@dataclass
class Usage:
    """What the upstream reported of one call's tokens, as its answer arrives."""

    reported: gen.UsageMetadata | None = None

    def told(self, response: gen.GenerateContentResponse) -> None:
        """Note the usage a response (or a stream's chunk) carries, if any."""
        if response.HasField("usage_metadata"):
            self.reported = response.usage_metadata


@dataclass(frozen=True)
class _Call:
    """One generate call, as the limits see it."""

    tenant: str
    method: str
    provider: ProviderKind
    upstream: str
    limits: GenerateLimits
    base_model: str = ""
    """The tuned model's base model: the metrics' model label (bounded by the catalogue,
    where a tuned model's own name would grow with every job)."""


class InferenceLimits:
    """Admits each generate call against its tenant's limits and the upstream's hold-off,
    and settles it after (see the module docstring).

    `slot_lease_s` bounds how long a call whose replica died counts as in flight.
    """

    def __init__(
        self,
        quota: InferenceQuota,
        quotas_for: QuotasFor,
        *,
        slot_lease_s: float,
        metrics: Metrics | None = None,
        hold_off_read_s: float = HOLD_OFF_READ_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._quota = quota
        self._quotas_for = quotas_for
        self._slot_lease_s = slot_lease_s
        self._metrics = metrics
        self._monotonic = monotonic
        self._holds = UpstreamHolds(quota, read_s=hold_off_read_s, monotonic=monotonic)
        self._settling: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        """Wait for the settlements still being written (the API stops after its calls)."""
        await asyncio.gather(*self._settling, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def call(
        self,
        tenant: str,
        method: str,
        path: str,
        request: gen.GenerateContentRequest,
        *,
        base_model: str = "",
    ) -> AsyncIterator[Usage]:
        """Around one upstream generate request to `path` (`request` as sent): admitted
        first, settled after; the block notes what the answer reported (`Usage.told`).
        `method` is the RPC's name and `base_model` the tuned model's base, for the
        metrics."""
        call = self._call_of(tenant, method, path, base_model)
        code = "OK"
        try:
            await self._holds.check(call.upstream)
            async with self._admitted(call, request) as usage:
                yield usage
        except TuningError as exc:
            code = await self._failed(call, exc)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"
            raise
        except Exception:
            code = "INTERNAL"
            raise
        finally:
            self._count(call, code)

    def _call_of(self, tenant: str, method: str, path: str, base_model: str) -> _Call:
        quotas = self._quotas_for(tenant)
        limits = GenerateLimits(
            quotas.generate_requests_per_minute,
            quotas.generate_tokens_per_minute,
            quotas.generate_max_concurrent,
        )
        provider, upstream = upstream_of(tenant, path)
        return _Call(tenant, method, provider, upstream, limits, base_model)

    @contextlib.asynccontextmanager
    async def _admitted(
        self, call: _Call, request: gen.GenerateContentRequest
    ) -> AsyncIterator[Usage]:
        """The block runs once the tenant's limits admit the call; its settlement after,
        however the block ends."""
        usage, call_id, estimate = Usage(), uuid.uuid4().hex, estimate_tokens(request)
        taken = 0
        if not call.limits.none:
            lease_ms = self._lease_ms()
            taken = await self._quota.admit(
                call.tenant,
                call.limits,
                call_id=call_id,
                estimate_tokens=estimate,
                lease_ms=lease_ms,
            )
        started = self._monotonic()
        try:
            yield usage
        finally:
            self._observe(call, usage, self._monotonic() - started)
            # Off the call's path: its answer need not wait for the bookkeeping. The task
            # is kept (and awaited by `aclose`), and a cancelled call cannot cancel it. A
            # tenant without limits is settled too: the settlement counts its usage.
            settling = asyncio.create_task(self._settle(call, call_id, taken, usage))
            self._settling.add(settling)
            settling.add_done_callback(self._settling.discard)

    async def _settle(self, call: _Call, call_id: str, taken: int, usage: Usage) -> None:
        reported = gen.UsageMetadata() if usage.reported is None else usage.reported
        used = used_tokens(reported)
        debit = used - taken if used else 0  # no count: the call cost its estimate
        try:
            await self._quota.settle(
                call.tenant,
                call.limits,
                call_id=call_id,
                debit_tokens=debit,
                prompt_tokens=reported.prompt_token_count,
                candidate_tokens=reported.candidates_token_count,
            )
        except Retryable as exc:  # Redis down or full: the answer is not lost for it
            log.warning(
                "generate of %s not settled (%s): its slot ends by its lease", call.tenant, exc
            )

    def _lease_ms(self) -> int:
        """How long the call may count as in flight: its deadline, at most the setting."""
        left_s = remaining_s()
        lease_s = self._slot_lease_s if left_s is None else min(self._slot_lease_s, left_s)
        return max(int(lease_s * 1000), 1) + 1000  # a second's grace past the deadline

    async def _failed(self, call: _Call, error: TuningError) -> str:
        """The outcome of a failed call; an upstream 429 holds the upstream off."""
        if isinstance(error, UpstreamError) and error.reason is Reason.UPSTREAM_RESOURCE_EXHAUSTED:
            try:
                await asyncio.shield(self._holds.hold(call.upstream, error.retry_after_s))
            except Retryable as exc:  # Redis down or full: the caller is told of the 429
                log.warning("hold-off of %s not recorded in Redis (%s)", call.upstream, exc)
        return str(code_pb2.Code.Name(error.code))

    def _count(self, call: _Call, code: str) -> None:
        if self._metrics is not None:
            labels = (call.tenant, call.provider.value, call.base_model, call.method, code)
            self._metrics.generate_requests.labels(*labels).inc()

    def _observe(self, call: _Call, usage: Usage, seconds: float) -> None:
        if self._metrics is None:
            return
        latency = self._metrics.generate_latency
        latency.labels(call.tenant, call.base_model, call.method).observe(seconds)
        if usage.reported is not None:
            tokens = self._metrics.generate_tokens.labels
            reported = usage.reported
            tokens(call.tenant, call.base_model, "prompt").inc(reported.prompt_token_count)
            tokens(call.tenant, call.base_model, "candidates").inc(reported.candidates_token_count)
