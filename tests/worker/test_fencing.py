"""No upstream side effect without a live lease (worker.fence), on real Redis and the emulator.

A worker whose lease ran out while it was paused, whose lease another worker took over,
or whose visit passed its deadline sends no create, cancel or delete; it meets LeaseLost,
and the emulator's counters show that nothing left. A pause is made real: the emulator's
token endpoint answers late (the worker waits for a token before every first request),
or a fence's trust is simply set in the past.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from core.domain.job import Job
from core.domain.states import JobState
from core.errors import LeaseHeld, LeaseLost, UpstreamNotFound, UpstreamRetryable
from core.redis.job_store import JobStore, Lease, Versioned
from core.redis.keys import Keys
from core.redis.schedule import Schedule
from core.runtime.metrics import Metrics
from core.security.token_source import TokenSource
from tests.harness import State, System, build_system_steps
from tests.worker.conftest import Upstream
from tests.worker.gemini.test_client import body
from worker import fence
from worker.fence import Fence, FenceMissing
from worker.gemini import GeminiClient
from worker.steps import Next, Steps
from worker.worker import Worker

TENANT = "team-a"
SIDE_EFFECT_ROUTES = ("tunedModels.create", "tunedModels.delete", "operations.cancel")

SideEffect = Callable[[GeminiClient, TokenSource], Awaitable[Any]]
SIDE_EFFECTS: dict[str, SideEffect] = {
    "create": lambda client, auth: client.create_tuned_model(auth, "tj-f", body()),
    "delete": lambda client, auth: client.delete_tuned_model(auth, "tunedModels/tj-f"),
    "cancel": lambda client, auth: client.cancel_operation(auth, "tunedModels/tj-f/operations/o"),
}


def job_id(name: str) -> str:
    return name.removeprefix("tuningJobs/")


async def side_effects_sent(requests: Callable[[str], Awaitable[int]]) -> int:
    return sum([await requests(route) for route in SIDE_EFFECT_ROUTES])


async def take(store: JobStore, name: str, lease_s: float) -> tuple[Lease, Versioned, Fence]:
    """Take the job's lease as a visit does, with the fence that goes with it."""
    sent_at = time.monotonic()
    acquired = await store.acquire(TENANT, job_id(name), lease_s)
    assert acquired is not None
    lease, current = acquired
    return lease, current, Fence.for_lease(f"visit of {name}", sent_at, lease_s)


async def take_over(store: JobStore, name: str, lease_s: float = 5.0) -> tuple[Lease, Versioned]:
    """Another worker takes the job's lease as soon as the first one's has run out."""
    async with asyncio.timeout(5):
        while True:
            try:
                acquired = await store.acquire(TENANT, job_id(name), lease_s)
            except LeaseHeld:
                await asyncio.sleep(0.02)
                continue
            assert acquired is not None
            return acquired


async def advance(steps: Steps, lease: Lease, held: Fence, current: Versioned) -> Next:
    """One visit's steps, under `held`, as Worker.visit runs them."""
    with fence.holding(held):
        return await steps.advance(lease, current)


# The client: every side effect checks the fence just before its request leaves.


@pytest.mark.parametrize("effect", SIDE_EFFECTS)
async def test_a_side_effect_under_an_expired_fence_sends_nothing(
    upstream: Upstream, effect: str
) -> None:
    # A visit paused past its lease: the monotonic clock ran on while it was stopped.
    paused = Fence("paused visit", valid_until=time.monotonic() - 1)
    with fence.holding(paused), pytest.raises(LeaseLost, match="may have expired"):
        await SIDE_EFFECTS[effect](upstream.client, upstream.auth())
    assert await side_effects_sent(upstream.requests) == 0


@pytest.mark.parametrize("effect", SIDE_EFFECTS)
async def test_a_side_effect_under_a_lost_fence_sends_nothing(
    upstream: Upstream, effect: str
) -> None:
    lost = Fence("visit whose lease was taken over", valid_until=time.monotonic() + 60)
    lost.lose()
    with fence.holding(lost), pytest.raises(LeaseLost, match="was lost"):
        await SIDE_EFFECTS[effect](upstream.client, upstream.auth())
    assert await side_effects_sent(upstream.requests) == 0


@pytest.mark.parametrize("effect", SIDE_EFFECTS)
async def test_a_side_effect_outside_any_fence_is_a_bug_and_sends_nothing(
    upstream: Upstream, effect: str
) -> None:
    with pytest.raises(FenceMissing):
        await SIDE_EFFECTS[effect](upstream.client, upstream.auth())
    assert await side_effects_sent(upstream.requests) == 0


async def test_reads_need_no_fence(upstream: Upstream) -> None:
    with pytest.raises(UpstreamNotFound):  # asked, and answered
        await upstream.client.get_tuned_model(upstream.auth(), "tunedModels/tj-none")
    assert await upstream.requests("tunedModels.get") == 1


async def test_the_retry_after_a_401_checks_the_fence_again(upstream: Upstream) -> None:
    auth = upstream.auth()
    await auth.headers()  # a token now; the refresh after the 401 is the slow one
    await upstream.faults(
        {"route": "tunedModels.create", "status": 401, "times": 1},
        {"route": "oauth.token", "latency_s": 0.6, "times": 1},
    )
    held = Fence("visit", valid_until=time.monotonic() + 0.4)
    with fence.holding(held), pytest.raises(LeaseLost):
        await upstream.client.create_tuned_model(auth, "tj-401", body())
    assert await upstream.requests("tunedModels.create") == 1  # the first, refused; no retry
    assert (await upstream.stats())["creates"] == 0


async def test_a_side_effect_waits_no_longer_than_its_fence(upstream: Upstream) -> None:
    await upstream.faults({"route": "tunedModels.delete", "latency_s": 3.0})
    held = Fence("visit", valid_until=time.monotonic() + 0.4)
    started = time.monotonic()
    with fence.holding(held), pytest.raises(UpstreamRetryable) as caught:
        await upstream.client.delete_tuned_model(upstream.auth(), "tunedModels/tj-slow")
    assert caught.value.status == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 1.5


# Steps: a stale visit meets LeaseLost before anything goes upstream.


async def test_a_visit_paused_past_its_lease_does_not_create_after_the_takeover(
    api_only: System,
) -> None:
    system, store = api_only, api_only.store
    job = await system.create()
    stale_steps, fresh_steps = await build_system_steps(system), await build_system_steps(system)
    # The first worker's wait for a token outlasts its lease, as a SIGSTOP would.
    await system.inject_faults({"route": "oauth.token", "latency_s": 1.0, "times": 1})
    lease, current, held = await take(store, job.name, lease_s=0.3)
    stale = asyncio.create_task(advance(stale_steps, lease, held, current))
    await system.eventually(lambda: _requested(system, "oauth.token", 1))

    second, fresh = await take_over(store, job.name)
    fresh_fence = Fence.for_lease("second visit", time.monotonic(), second.lease_s)
    assert (await advance(fresh_steps, second, fresh_fence, fresh)).delay_s is not None
    with pytest.raises(LeaseLost):
        await stale  # it resumed, and stopped before its create left
    assert await system.upstream_requests("tunedModels.create") == 1  # the second's only
    assert (await system.upstream_stats())["creates"] == 1
    assert (await system.get(job.name)).state == State.RUNNING


async def test_a_stale_visit_to_a_job_cancelled_meanwhile_meets_lease_lost(
    api_only: System,
) -> None:
    system, store = api_only, api_only.store
    job = await system.create()
    stale_steps = await build_system_steps(system)
    lease, current, _ = await take(store, job.name, lease_s=0.2)
    second, _ = await take_over(store, job.name)
    await system.cancel(job.name)  # QUEUED: CANCELLED at once; the second worker is done
    await store.release(second)
    # The stale visit believes its lease is good; only Redis knows better.
    trusting = Fence("stale visit", valid_until=time.monotonic() + 60)
    with pytest.raises(LeaseLost):
        await advance(stale_steps, lease, trusting, current)
    assert (await system.upstream_stats())["requests"] == {}
    assert (await system.get(job.name)).state == State.CANCELLED


async def test_a_change_that_writes_nothing_still_proves_the_lease(api_only: System) -> None:
    system, store = api_only, api_only.store
    job = await system.create()
    await system.cancel(job.name)
    stale, _, _ = await take(store, job.name, lease_s=0.2)
    second, _ = await take_over(store, job.name)

    def unchanged(j: Job) -> Job | None:
        return None

    with pytest.raises(LeaseLost):
        await store.update(TENANT, job_id(job.name), unchanged, lease=stale)
    kept = await store.update(TENANT, job_id(job.name), unchanged, lease=second)
    assert kept is not None and kept.state == JobState.CANCELLED


# The worker: a visit stops at once when its lease is lost or its deadline passes.


def fast_worker(
    system: System, steps: Steps, metrics: Metrics | None = None, **overrides: Any
) -> tuple[Worker, Schedule]:
    settings = dataclasses.replace(system.settings, **overrides)
    schedule = Schedule(system.redis, Keys(settings.redis_key_prefix))
    return Worker(system.store, schedule, steps, settings, metrics=metrics), schedule


async def test_a_visit_whose_lease_is_taken_over_stops_at_once(api_only: System) -> None:
    system, store = api_only, api_only.store
    job = await system.create()
    metrics = Metrics.create()
    worker, _ = fast_worker(system, await build_system_steps(system), metrics, job_lease_s=0.6)
    await system.inject_faults({"route": "oauth.token", "latency_s": 1.5, "times": 1})
    visit = asyncio.create_task(worker.visit(TENANT, job_id(job.name)))
    await system.eventually(lambda: _requested(system, "oauth.token", 1))
    # Its lease passes to another worker (the visit's is the job's first: epoch 1).
    await store.release(Lease(TENANT, job_id(job.name), 1, 0.6), finished=False)
    taken_at = time.monotonic()
    await take_over(store, job.name)
    async with asyncio.timeout(1.0):  # the keeper renews every 0.2 s; the token takes 1.5 s
        await visit
    assert time.monotonic() - taken_at < 1.0
    assert await system.upstream_requests("tunedModels.create") == 0
    assert metrics.registry.get_sample_value("tuning_lease_losses_total") == 1  # its alert sees it


async def test_a_visit_past_its_deadline_stops_and_releases_the_job(api_only: System) -> None:
    system, store = api_only, api_only.store
    job = await system.create()
    worker, schedule = fast_worker(system, await build_system_steps(system), visit_timeout_s=0.3)
    await system.inject_faults({"route": "oauth.token", "latency_s": 1.5, "times": 1})
    started = time.monotonic()
    async with asyncio.timeout(1.0):
        await worker.visit(TENANT, job_id(job.name))
    assert time.monotonic() - started < 1.0
    await worker.send_moves()
    # Released: another worker takes it at once, and it is due again soon.
    second, current = await store.acquire(TENANT, job_id(job.name), 5.0)  # type: ignore[misc]
    assert second.deliveries == 2  # the stopped visit counts as one that did not finish
    assert current.job.state == JobState.CREATING
    await system.eventually(lambda: _claimable(schedule, job.name))
    assert await system.upstream_requests("tunedModels.create") == 0


async def test_a_worker_process_stopped_past_its_lease_sends_nothing_when_it_resumes(
    api_only: System,
) -> None:
    """The soak's finding, for real: SIGSTOP a worker in the middle of a visit, let
    another worker take the job and create it, SIGCONT: no second create leaves."""
    system, store = api_only, api_only.store
    await system.inject_faults({"route": "oauth.token", "latency_s": 1.0, "times": 1})
    worker = await system.worker_process(job_lease_s=0.6, claim_lease_s=0.6)
    job = await system.create()
    await system.eventually(lambda: _requested(system, "oauth.token", 1))
    worker.process.send_signal(signal.SIGSTOP)  # waiting for its token, about to create
    try:
        second, fresh = await take_over(store, job.name)
        fresh_fence = Fence.for_lease("second visit", time.monotonic(), second.lease_s)
        await advance(await build_system_steps(system), second, fresh_fence, fresh)
        assert await system.upstream_requests("tunedModels.create") == 1
    finally:
        worker.process.send_signal(signal.SIGCONT)
    await system.eventually(lambda: _logged(worker.log_path, "lease taken over", "lease lost"))
    assert await system.upstream_requests("tunedModels.create") == 1
    assert (await system.upstream_stats())["creates"] == 1


async def _logged(path: Path, *phrases: str) -> bool:
    text = await asyncio.to_thread(path.read_text)
    return any(phrase in text for phrase in phrases)


async def _requested(system: System, route: str, count: int) -> bool:
    return await system.upstream_requests(route) >= count


async def _claimable(schedule: Schedule, name: str) -> bool:
    return (TENANT, job_id(name)) in [c[:2] for c in await schedule.claim(10, 5.0)]
