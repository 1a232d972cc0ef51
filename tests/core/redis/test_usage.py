"""Usage per tenant and month against a real Redis: counted by the scripts that already run
(CREATE, SAVE, GENERATE_SETTLE), exactly, once, and refused past a budget atomically."""

from __future__ import annotations

import asyncio
import calendar

import pytest

from core.domain.job import DataStats, Hyperparameters, Job
from core.domain.quotas import TenantQuotas
from core.domain.states import JobState
from core.domain.usage import USAGE_RETENTION_S, MonthUsage, estimated_training_tokens
from core.errors import Reason, TrainingBudgetSpent
from core.redis.client import Redis, connect
from core.redis.inference_quota import GenerateLimits, InferenceQuota
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.usage import UsageReader
from core.runtime.metrics import Metrics
from devstack.redis_cluster import RedisCluster
from tests.clocks import FakeClock
from worker.gauges import GaugeSampler

NOVEMBER_LAST_S = calendar.timegm((2026, 11, 30, 23, 59, 0, 0, 0, 0))


def new_job(job_id: str = "j1", *, examples: int = 10, epochs: int = 0) -> Job:
    return Job(
        id=job_id,
        tenant="team-a",
        base_model="models/x",
        request_hash=f"h-{job_id}",
        example_count=examples,
        hyperparameters=Hyperparameters(epoch_count=epochs),
    )


def budget_of(tokens: int) -> TenantQuotas:
    return TenantQuotas(
        max_running=5, creates_per_minute=6000, create_burst=100, training_token_budget=tokens
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOVEMBER_LAST_S)


@pytest.fixture
def store(redis: Redis, prefix: str, clock: FakeClock) -> JobStore:
    return JobStore(redis, Keys(prefix), clock)


@pytest.fixture
def reader(redis: Redis, prefix: str) -> UsageReader:
    return UsageReader(redis, Keys(prefix))


def test_the_estimate_is_characters_over_four_times_the_epochs() -> None:
    assert estimated_training_tokens(401, 3) == 101 * 3
    assert estimated_training_tokens(400, 0) == 100 * 5  # the default epochs


async def test_creates_are_counted_exactly_and_a_retry_once(
    store: JobStore, reader: UsageReader
) -> None:
    await store.create(new_job("j1", examples=10, epochs=2), b"[]", training_characters=1000)
    await store.create(new_job("j2", examples=3), b"[]", training_characters=40)
    await store.create(new_job("j1", examples=10, epochs=2), b"[]", training_characters=1000)
    assert await reader.month("team-a", "2026-11") == MonthUsage(
        "team-a",
        "2026-11",
        jobs_created=2,
        training_examples=13,
        estimated_training_tokens=250 * 2 + 10 * 5,
    )
    assert (await reader.month("team-b", "2026-11")).jobs_created == 0


async def test_the_month_rolls_over_by_the_clock(
    store: JobStore, reader: UsageReader, clock: FakeClock, redis: Redis, prefix: str
) -> None:
    await store.create(new_job("j1"), b"[]", training_characters=4)
    clock.advance(120)  # 2026-12-01T00:01Z
    await store.create(new_job("j2"), b"[]", training_characters=4)
    await store.create(new_job("j3"), b"[]", training_characters=4)
    assert (await reader.month("team-a", "2026-11")).jobs_created == 1
    assert (await reader.month("team-a", "2026-12")).jobs_created == 2
    ttl_ms = await redis.pttl(Keys(prefix).tenant_usage("team-a", "2026-12"))
    assert USAGE_RETENTION_S * 1000 - 60_000 < ttl_ms <= USAGE_RETENTION_S * 1000


async def test_billable_tokens_are_counted_once_in_the_month_the_job_succeeded(
    store: JobStore, reader: UsageReader, clock: FakeClock
) -> None:
    await store.create(new_job("j1"), b"[]", training_characters=4)
    clock.advance(120)  # it ends in December
    stats = DataStats(example_count=10, billable_tokens=12_345)
    running = lambda j: j.replace(state=JobState.RUNNING, data_stats=stats)  # noqa: E731
    succeeded = lambda j: j.replace(state=JobState.SUCCEEDED)  # noqa: E731
    await store.update("team-a", "j1", running)
    assert (await reader.month("team-a", "2026-12")).billable_training_tokens == 0
    await store.update("team-a", "j1", succeeded)
    await store.update("team-a", "j1", lambda j: j.replace(display_name="renamed"))
    await store.update("team-a", "j1", lambda j: j.replace(deleted=True))
    assert (await reader.month("team-a", "2026-12")).billable_training_tokens == 12_345
    assert (await reader.month("team-a", "2026-11")).billable_training_tokens == 0


async def test_a_job_past_the_budget_is_refused_and_not_counted(
    store: JobStore, reader: UsageReader
) -> None:
    quotas = budget_of(1000)
    await store.create(new_job("j1", epochs=1), b"[]", quotas=quotas, training_characters=3200)
    with pytest.raises(TrainingBudgetSpent) as refused:
        await store.create(new_job("j2", epochs=1), b"[]", quotas=quotas, training_characters=804)
    assert refused.value.reason is Reason.TRAINING_BUDGET_SPENT
    assert refused.value.subject == "tenant:team-a"
    assert refused.value.metadata == {"budget": "1000", "used": "800", "requested": "201"}
    assert 0 < refused.value.retry_after_s <= 60  # the month ends in a minute
    await store.create(new_job("j3", epochs=1), b"[]", quotas=quotas, training_characters=796)
    usage = await reader.month("team-a", "2026-11")
    assert (usage.jobs_created, usage.estimated_training_tokens) == (2, 999)
    assert await store.get("team-a", "j2") is None
    # a retry of a job already made is answered, whatever the budget says now
    again = await store.create(new_job("j1", epochs=1), b"[]", quotas=budget_of(1))
    assert again.created is False


async def test_racing_creates_never_both_pass_the_budget(
    store: JobStore, reader: UsageReader
) -> None:
    quotas = budget_of(1000)
    outcomes = await asyncio.gather(
        *(
            store.create(new_job(f"j{n}", epochs=1), b"[]", quotas=quotas, training_characters=400)
            for n in range(30)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 10
    assert all(isinstance(o, TrainingBudgetSpent) for o in outcomes if isinstance(o, Exception))
    assert (await reader.month("team-a", "2026-11")).estimated_training_tokens == 1000


async def test_the_crossing_of_the_warning_fraction_is_logged_once(
    store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    quotas = budget_of(1000)
    for n in range(5):  # 200 tokens each: 800 is reached by the fourth
        await store.create(
            new_job(f"j{n}", epochs=1), b"[]", quotas=quotas, training_characters=800
        )
    warnings = [r.getMessage() for r in caplog.records if "training tokens" in r.getMessage()]
    assert warnings == [
        "tenant team-a has used 800 of its 1000 estimated training tokens this month (80%)"
    ]


async def test_settled_generate_calls_are_counted_with_the_upstream_tokens(
    redis: Redis, prefix: str, reader: UsageReader, clock: FakeClock
) -> None:
    quota = InferenceQuota(redis, Keys(prefix), clock)
    for limits in (GenerateLimits(600, 10_000, 4), GenerateLimits(0, 0, 0)):  # limits or none
        await quota.settle(
            "team-a", limits, call_id="c", debit_tokens=0, prompt_tokens=7, candidate_tokens=30
        )
    await quota.settle("team-a", GenerateLimits(0, 0, 0), call_id="d", debit_tokens=0)
    usage = await reader.month("team-a", "2026-11")
    assert (usage.generate_requests, usage.generate_prompt_tokens) == (3, 14)
    assert usage.generate_candidate_tokens == 60


async def test_the_worker_exports_the_months_usage_and_budget_used(
    store: JobStore, redis: Redis, prefix: str, clock: FakeClock
) -> None:
    quotas = budget_of(1000)
    await store.create(new_job("j1", epochs=1), b"[]", quotas=quotas, training_characters=1000)
    metrics = Metrics.create()
    sampler = GaugeSampler(
        redis,
        Keys(prefix),
        store,
        metrics,
        lambda: ["team-a", "team-b"],
        clock,
        quotas_for=lambda tenant: quotas if tenant == "team-a" else budget_of(0),
    )
    await sampler.sample()
    value = metrics.registry.get_sample_value
    assert value("tuning_usage_jobs_created", {"tenant": "team-a"}) == 1
    estimated = {"tenant": "team-a", "kind": "estimated"}
    assert value("tuning_usage_training_tokens", estimated) == 250
    assert value("tuning_training_budget_used_ratio", {"tenant": "team-a"}) == 0.25
    assert value("tuning_training_budget_used_ratio", {"tenant": "team-b"}) == 0
    clock.advance(120)  # a new month: nothing used yet
    await sampler.sample()
    assert value("tuning_usage_training_tokens", estimated) == 0


async def test_the_counting_scripts_run_on_redis_cluster(
    cluster: RedisCluster, prefix: str, clock: FakeClock
) -> None:
    client = connect(cluster.url, cluster=True)
    try:
        store, keys = JobStore(client, Keys(prefix), clock), Keys(prefix)
        await store.create(new_job("j1"), b"[]", quotas=budget_of(10), training_characters=8)
        stats = DataStats(billable_tokens=7)
        done = lambda j: j.replace(state=JobState.SUCCEEDED, data_stats=stats)  # noqa: E731
        await store.update("team-a", "j1", done)
        quota = InferenceQuota(client, keys, clock)
        await quota.settle(
            "team-a", GenerateLimits(0, 0, 0), call_id="c", debit_tokens=0, prompt_tokens=3
        )
        usage = await UsageReader(client, keys).month("team-a", "2026-11")
        assert (usage.estimated_training_tokens, usage.billable_training_tokens) == (10, 7)
        assert usage.generate_prompt_tokens == 3
    finally:
        await client.aclose()
