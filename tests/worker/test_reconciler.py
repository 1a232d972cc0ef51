"""The reconciler against real Redis and the emulator over real HTTP.

Models are made upstream the way a stale worker makes them (the provider's create, under
a fence), job records are written through the job store, and time is the emulator's
clock, which the test moves: the reconciler, the job store and the upstream share it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest

from core.domain.job import Example, Job, new_job_id
from core.domain.providers import ProviderChoice
from core.domain.states import JobState
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.lock import FleetLock
from core.redis.scripts import Scripts, remove_call
from core.redis.tombstones import Tombstones
from core.runtime.metrics import Metrics
from core.security.tenants import TenantDirectory
from core.upstream_http import open_session
from tests.harness import BASE_MODEL, System
from worker import fence
from worker.gemini import GeminiClient
from worker.process import WorkerWiring, build_providers
from worker.provider import TuningRequest
from worker.reconciler import Outcome, PassResult, Policy, Reconciler

GRACE_S = 100.0
RETENTION_S = 3600.0
TENANT = "team-a"
EXAMPLES = [Example(str(n), str(n + 1)) for n in range(20)]


@dataclass
class Rig:
    """The system without a worker, and what a test needs to build reconcilers on it."""

    system: System
    wiring: WorkerWiring
    store: JobStore
    client: GeminiClient

    @property
    def clock_s(self) -> float:
        return self.system.clock()

    def reconciler(
        self, *, lease_s: float = 60.0, page_size: int = 100, **policy: Any
    ) -> Reconciler:
        providers, auth_for = build_providers(self.wiring)
        provider = providers.of(ProviderChoice())  # team-a tunes on the Gemini API
        keys = self.wiring.keys
        defaults = Policy(
            grace_s=GRACE_S,
            job_retention_s=RETENTION_S,
            delete_cancelled_models=True,
            pages_per_pass=50,
            deletes_per_pass=100,
        )
        return Reconciler(
            self.store,
            Tombstones(self.system.redis, keys),
            FleetLock(self.system.redis, keys.reconciler_lock()),
            lambda _tenant: [provider],
            auth_for,
            self.wiring.tenants.tenant_ids,
            self.system.clock,
            dataclasses.replace(defaults, **policy),
            metrics=self.wiring.metrics,
            lease_s=lease_s,
            page_size=page_size,
        )

    async def job(self, state: JobState, **fields: Any) -> Job:
        """A job record in `state` (ended now, if that state is an end)."""
        job = Job(id=new_job_id(TENANT, ""), tenant=TENANT, base_model=BASE_MODEL, **fields)
        await self.store.create(job, b"[]")
        if state == JobState.QUEUED:
            return job
        end = self.clock_s if state.terminal else None
        stored = await self.store.update(
            TENANT, job.id, lambda j: j.replace(state=state, end_time=end)
        )
        assert stored is not None
        return stored

    async def remove_deleted(self, job: Job) -> None:
        """What a deleted job's clean-up ends with: the record removed (a tombstone left)."""
        await self.store.update(TENANT, job.id, lambda j: j.replace(deleted=True))
        acquired = await self.store.acquire(TENANT, job.id, 5.0)
        assert acquired is not None
        assert await self.store.remove(acquired[0])

    async def make_model(self, model_id: str) -> None:
        """Create a model upstream, as a worker (a stale one, perhaps) would."""
        providers, auth_for = build_providers(self.wiring)
        provider = providers.of(ProviderChoice())
        job = Job(id="x", tenant=TENANT, base_model=BASE_MODEL, display_name="orphan")
        request = dataclasses.replace(TuningRequest.from_job(job, EXAMPLES), model_id=model_id)
        with fence.holding(fence.Fence.for_lease("test", time.monotonic(), 60.0)):
            await provider.create(auth_for(TENANT), request)

    async def models(self) -> set[str]:
        """The ids of team-a's models upstream."""
        auth = build_providers(self.wiring)[1](TENANT)
        found, _ = await self.client.list_tuned_models(auth, page_size=1000)
        return {str(m["name"]).removeprefix("tunedModels/") for m in found}

    async def deletes(self) -> int:
        return await self.system.upstream_requests("tunedModels.delete")

    def counted(self, name: str, **labels: str) -> float:
        value = self.wiring.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@pytest.fixture
async def rig(api_only: System) -> AsyncIterator[Rig]:
    system = api_only
    async with open_session(timeout_s=10.0) as http:
        with httpx.Client(timeout=10.0) as token_http:
            tenants = TenantDirectory.watch(system.tenants_file)
            wiring = WorkerWiring(
                system.settings,
                system.redis,
                tenants,
                http,
                token_http,
                clock=system.clock,
                metrics=Metrics.create(),
            )
            store = JobStore(system.redis, Keys(system.settings.redis_key_prefix), system.clock)
            client = GeminiClient(http, system.settings.upstream_base_url)
            yield Rig(system, wiring, store, client)


async def test_leftovers_are_deleted_after_the_grace_and_wanted_models_kept(rig: Rig) -> None:
    await rig.make_model("tj-" + new_job_id(TENANT, ""))  # no record, made long ago
    retired = (await rig.models()).pop()
    rig.system.clock.advance(RETENTION_S + 10)
    cancelled = await rig.job(JobState.CANCELLED)
    failed = await rig.job(JobState.FAILED)
    succeeded = await rig.job(JobState.SUCCEEDED)
    running = await rig.job(JobState.RUNNING)
    deleted = await rig.job(JobState.CANCELLED)
    await rig.remove_deleted(deleted)
    unknown_id = new_job_id(TENANT, "")
    for model_id in (j.tuned_model_id for j in (cancelled, failed, succeeded, running, deleted)):
        await rig.make_model(model_id)
    await rig.make_model("tj-" + unknown_id)
    await rig.make_model("someone-elses-model")
    rig.system.clock.advance(GRACE_S + 60)

    report = await rig.reconciler().reconcile_once()

    assert report.result == PassResult.DONE
    assert await rig.models() == {
        retired,
        succeeded.tuned_model_id,
        running.tuned_model_id,
        "someone-elses-model",
    }
    assert report.outcomes == {
        Outcome.DELETED: 4,
        Outcome.KEPT_SUCCEEDED: 1,
        Outcome.KEPT_ACTIVE: 1,
        Outcome.KEPT_RETIRED: 1,
    }
    assert await rig.deletes() == 4
    assert rig.counted("tuning_reconciler_models_total", outcome="deleted") == 4
    assert rig.counted("tuning_reconciler_passes_total", result="done") == 1
    assert rig.counted("tuning_reconciler_last_pass_timestamp_seconds") == rig.clock_s


async def test_models_within_the_grace_are_kept_until_it_passes(rig: Rig) -> None:
    cancelled = await rig.job(JobState.CANCELLED)
    await rig.make_model(cancelled.tuned_model_id)
    rig.system.clock.advance(GRACE_S / 2)
    reconciler = rig.reconciler()

    early = await reconciler.reconcile_once()
    rig.system.clock.advance(GRACE_S)
    late = await reconciler.reconcile_once()

    assert early.outcomes == {Outcome.IN_GRACE: 1}
    assert late.outcomes == {Outcome.DELETED: 1}
    assert await rig.deletes() == 1
    assert await rig.models() == set()


async def test_a_model_of_another_tenants_job_is_left_to_that_tenant(rig: Rig) -> None:
    """Tenants tuning in one project list each other's resources; one made before the
    tenant label (the Gemini API has none) is known as another's by that tenant's record."""
    theirs = Job(id=new_job_id("team-b", ""), tenant="team-b", base_model=BASE_MODEL)
    await rig.store.create(theirs, b"[]")
    await rig.make_model(theirs.tuned_model_id)  # listed by team-a's credential
    rig.system.clock.advance(GRACE_S * 2)

    report = await rig.reconciler().reconcile_once()

    assert report.outcomes == {Outcome.KEPT_OTHER_TENANT: 1}
    assert await rig.deletes() == 0


async def test_cancelled_models_are_kept_when_the_operator_keeps_them(rig: Rig) -> None:
    cancelled = await rig.job(JobState.CANCELLED)
    failed = await rig.job(JobState.FAILED)
    await rig.make_model(cancelled.tuned_model_id)
    await rig.make_model(failed.tuned_model_id)
    rig.system.clock.advance(GRACE_S + 60)

    report = await rig.reconciler(delete_cancelled_models=False).reconcile_once()

    assert report.outcomes == {Outcome.KEPT_CANCELLED: 1, Outcome.DELETED: 1}
    assert await rig.models() == {cancelled.tuned_model_id}


async def test_a_tombstone_refuses_the_id_and_is_dropped_once_nothing_is_left(rig: Rig) -> None:
    system = rig.system
    made = await system.create(request_id="7c0e3f5a-1b2c-4d5e-8f90-a1b2c3d4e5f6")
    await system.delete(made.name)
    job_id = made.name.removeprefix("tuningJobs/")
    found = await rig.store.read(TENANT, job_id)
    assert found is not None
    await rig.remove_deleted(found.job)
    await rig.make_model(found.job.tuned_model_id)  # a stale worker, after the clean-up

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await system.create(request_id="7c0e3f5a-1b2c-4d5e-8f90-a1b2c3d4e5f6")
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS

    rig.system.clock.advance(GRACE_S + 60)
    reconciler = rig.reconciler()
    first = await reconciler.reconcile_once()
    second = await reconciler.reconcile_once()

    assert first.outcomes == {Outcome.DELETED: 1}
    assert first.tombstones_dropped == 0  # its model was still listed in that pass
    assert second.tombstones_dropped == 1
    tombstones = Tombstones(system.redis, rig.wiring.keys)
    assert await tombstones.removed_at(TENANT, [job_id]) == {}
    assert await rig.models() == set()


async def test_two_reconcilers_at_once_make_one_pass(rig: Rig) -> None:
    failed = await rig.job(JobState.FAILED)
    await rig.make_model(failed.tuned_model_id)
    rig.system.clock.advance(GRACE_S + 60)
    await rig.system.inject_faults({"route": "tunedModels.list", "latency_s": 0.3})
    tenants = len(rig.wiring.tenants.tenant_ids())

    reports = await asyncio.gather(
        rig.reconciler().reconcile_once(), rig.reconciler().reconcile_once()
    )

    assert sorted(r.result for r in reports) == [PassResult.DONE, PassResult.SKIPPED]
    assert await rig.system.upstream_requests("tunedModels.list") == tenants
    assert await rig.deletes() == 1


async def test_a_pass_keeps_the_lock_for_its_rest(rig: Rig) -> None:
    first = await rig.reconciler().reconcile_once(rest_s=30.0)
    second = await rig.reconciler().reconcile_once()

    assert (first.result, second.result) == (PassResult.DONE, PassResult.SKIPPED)


async def test_each_pass_deletes_and_lists_no_more_than_its_caps(rig: Rig) -> None:
    for _ in range(5):
        await rig.make_model((await rig.job(JobState.FAILED)).tuned_model_id)
    rig.system.clock.advance(GRACE_S + 60)

    by_deletes = await rig.reconciler(deletes_per_pass=2).reconcile_once()
    assert by_deletes.outcomes == {Outcome.DELETED: 2, Outcome.DEFERRED: 3}
    assert await rig.deletes() == 2

    lists_before = await rig.system.upstream_requests("tunedModels.list")
    by_pages = await rig.reconciler(page_size=1, pages_per_pass=2).reconcile_once()
    assert by_pages.result == PassResult.CAPPED
    assert await rig.system.upstream_requests("tunedModels.list") - lists_before == 2
    assert by_pages.outcomes == {Outcome.DELETED: 2}
    assert len(await rig.models()) == 1


async def test_a_pass_whose_lease_ran_out_sends_no_delete(rig: Rig) -> None:
    # The listing outlasts the lock's lease, as a pause would: the lock expires, the
    # renewal before the delete fails, and the pass stops with nothing sent.
    failed = await rig.job(JobState.FAILED)
    await rig.make_model(failed.tuned_model_id)
    rig.system.clock.advance(GRACE_S + 60)
    await rig.system.inject_faults({"route": "tunedModels.list", "latency_s": 0.6})

    report = await rig.reconciler(lease_s=0.3).reconcile_once()

    assert report.result == PassResult.LOCK_LOST
    assert await rig.deletes() == 0
    assert await rig.models() == {failed.tuned_model_id}
    assert rig.counted("tuning_reconciler_passes_total", result="lock_lost") == 1


async def test_the_schedule_runs_passes_until_stopped(rig: Rig) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(rig.reconciler().run(stop, interval_s=0.05))

    await rig.system.eventually(
        lambda: _passes_at_least(rig, 2),
        timeout_s=5.0,
    )
    stop.set()
    await asyncio.wait_for(running, 5.0)


async def _passes_at_least(rig: Rig, count: int) -> bool:
    done = rig.counted("tuning_reconciler_passes_total", result="done")
    skipped = rig.counted("tuning_reconciler_passes_total", result="skipped")
    return done + skipped >= count


async def test_tombstones_are_capped_per_tenant_keeping_the_newest(rig: Rig) -> None:
    keys, scripts = rig.wiring.keys, Scripts(rig.system.redis)
    jobs = [await rig.job(JobState.QUEUED) for _ in range(3)]
    for n, job in enumerate(jobs, start=1):
        acquired = await rig.store.acquire(TENANT, job.id, 5.0)
        assert acquired is not None
        call = remove_call(
            job_key=keys.job(TENANT, job.id),
            data_key=keys.job_data(TENANT, job.id),
            index_key=keys.tenant_index(TENANT),
            active_key=keys.tenant_active(TENANT),
            queue_key=keys.tenant_queue(TENANT),
            running_key=keys.tenant_running(TENANT),
            storage_key=keys.tenant_storage(TENANT),
            ended_key=keys.tenant_ended(TENANT),
            tombstones_key=keys.tenant_tombstones(TENANT),
            counts_key=keys.tenant_state_counts(TENANT),
            fetched_key=keys.tenant_fetched(TENANT),
            events_key=keys.job_events(TENANT, job.id),
            epoch=acquired[0].epoch,
            job_id=job.id,
            tombstone_ms=n * 1000,
            max_tombstones=2,
        )
        assert await scripts.run(call) == 1

    tombstones = Tombstones(rig.system.redis, keys)
    kept = await tombstones.removed_at(TENANT, [j.id for j in jobs])
    assert kept == {jobs[1].id: 2.0, jobs[2].id: 3.0}


async def test_retention_leaves_no_tombstone(rig: Rig) -> None:
    succeeded = await rig.job(JobState.SUCCEEDED)
    acquired = await rig.store.acquire(TENANT, succeeded.id, 5.0)
    assert acquired is not None
    assert await rig.store.remove(acquired[0], retired=True)

    tombstones = Tombstones(rig.system.redis, rig.wiring.keys)
    assert await tombstones.removed_at(TENANT, [succeeded.id]) == {}
