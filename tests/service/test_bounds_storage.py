"""Storage bounds: per-tenant dataset and byte quotas, DeleteDataset, ListDatasets, retention.

Everything goes through a real API server (and, where jobs must be submitted, a real
worker) on a real Redis; retention passes that must be exact run by hand with a clock a
little ahead of the system's, the periodic one through the worker's sweep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import grpc
import pytest
from google.rpc import error_details_pb2

from core.domain.job import encode_pairs, random_id
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.storage import StorageUsage, TenantStorage
from devstack.tenants import write_tenant_files
from tests.conftest import SystemFactory
from tests.harness import State, System, examples, job_spec
from tests.rpc_errors import detail, reason, violations
from tuning.v1 import dataset_pb2, tuning_service_pb2
from worker.retention import Retention

DAY_S = 24 * 3600.0


def jsonl(count: int, tag: str = "") -> bytes:
    rows = [{"text_input": f"question {tag}{n}?", "output": str(n + 1)} for n in range(count)]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def job_bytes() -> int:
    """What one `System.create` job's examples weigh in its tenant's storage."""
    pairs = examples()
    return len(encode_pairs([e.text_input for e in pairs], [e.output for e in pairs]))


def storage(system: System) -> TenantStorage:
    return TenantStorage(system.redis, Keys(system.settings.redis_key_prefix))


async def usage(system: System, tenant: str = "team-a") -> StorageUsage:
    return await storage(system).usage(tenant)


async def delete_dataset(system: System, name: str, tenant: str = "team-a") -> None:
    request = tuning_service_pb2.DeleteDatasetRequest(name=name)
    await system.stub.DeleteDataset(request, metadata=system.auth(tenant))


async def get_dataset(system: System, name: str, tenant: str = "team-a") -> dataset_pb2.Dataset:
    request = tuning_service_pb2.GetDatasetRequest(name=name)
    return await system.stub.GetDataset(request, metadata=system.auth(tenant))


async def list_datasets(
    system: System, tenant: str = "team-a", **fields: object
) -> tuning_service_pb2.ListDatasetsResponse:
    request = tuning_service_pb2.ListDatasetsRequest(**fields)  # type: ignore[arg-type]
    return await system.stub.ListDatasets(request, metadata=system.auth(tenant))


def assert_storage_quota(error: grpc.aio.AioRpcError, quota: str) -> None:
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(error) == "STORAGE_QUOTA_EXCEEDED"
    assert detail(error, error_details_pb2.ErrorInfo).metadata["quota"] == quota
    failure = detail(error, error_details_pb2.QuotaFailure)
    assert failure.violations[0].subject == "tenant:team-a"
    assert quota in failure.violations[0].description


def retention(
    system: System, *, now_s: float, jobs_s: float = 0, datasets_s: float = 0
) -> Retention:
    """The workers' retention pass, with periods `jobs_s` and `datasets_s`, at `now_s`."""
    keys = Keys(system.settings.redis_key_prefix)
    return Retention(
        JobStore(system.redis, keys),
        TenantStorage(system.redis, keys),
        lambda: now_s,
        job_retention_s=jobs_s,
        dataset_retention_s=datasets_s,
    )


# Quotas.


async def test_a_tenant_at_its_dataset_quota_is_refused_until_it_deletes_one(
    make_system: SystemFactory,
) -> None:
    async with make_system(with_worker=False, tenant_max_datasets=2) as system:
        kept = [await system.upload(jsonl(20, f"a{n}")) for n in range(2)]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.upload(jsonl(20, "one too many"))
        assert_storage_quota(caught.value, "max_datasets")
        assert len((await list_datasets(system)).datasets) == 2  # nothing stored for it
        # Another tenant is not affected: it uploads, and creates from its dataset.
        theirs = [await system.upload(jsonl(20, f"b{n}"), tenant="team-b") for n in range(2)]
        await system.create("team-b", dataset=theirs[0].name, training_examples=[])
        before = await usage(system)
        await delete_dataset(system, kept[0].name)
        after = await usage(system)
        assert after.datasets == 1
        assert 0 < after.stored_bytes < before.stored_bytes
        await system.upload(jsonl(20, "again"))
        assert (await usage(system)).datasets == 2


async def test_racing_uploads_cannot_pass_the_dataset_quota_together(
    make_system: SystemFactory,
) -> None:
    async with make_system(
        with_worker=False, tenant_max_datasets=3, tenant_max_uploads=8, max_uploads=16
    ) as system:
        outcomes = await asyncio.gather(
            *(system.upload(jsonl(20, f"r{n}")) for n in range(8)), return_exceptions=True
        )
        stored = [o for o in outcomes if isinstance(o, dataset_pb2.Dataset)]
        refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(stored) == 3
        assert len(refused) == 5
        assert {reason(e) for e in refused} == {"STORAGE_QUOTA_EXCEEDED"}
        assert (await usage(system)).datasets == 3


async def test_stored_bytes_count_datasets_and_jobs_until_the_jobs_are_deleted(
    make_system: SystemFactory,
) -> None:
    job_size = job_bytes()
    async with make_system(
        with_worker=False, tenant_max_stored_bytes=3 * job_size + job_size // 2
    ) as system:
        jobs = [await system.create(display_name=f"job {n}") for n in range(3)]
        assert await usage(system) == StorageUsage(0, 3 * job_size)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.create(display_name="one too many")
        assert_storage_quota(caught.value, "max_stored_bytes")
        with pytest.raises(grpc.aio.AioRpcError) as caught:  # the same answer for a dry run
            await system.stub.CreateTuningJob(
                tuning_service_pb2.CreateTuningJobRequest(
                    tuning_job=job_spec(), validate_only=True
                ),
                metadata=system.auth(),
            )
        assert_storage_quota(caught.value, "max_stored_bytes")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.upload(jsonl(20))
        assert_storage_quota(caught.value, "max_stored_bytes")
        await system.create("team-b")  # another tenant is not affected
        # A job keeps its examples when it ends (they are its recipe, for a re-tune):
        # only deleting it gives their bytes back.
        await system.cancel(jobs[2].name)
        assert (await usage(system)).stored_bytes == 3 * job_size
        await system.delete(jobs[2].name)
        assert (await usage(system)).stored_bytes == 2 * job_size
        late = await system.create(display_name="after the delete")
        await system.delete(late.name)
        await system.start_worker()
        for job in jobs[:2]:
            await system.wait_for(job.name, {State.RUNNING})
        assert (await usage(system)).stored_bytes == 2 * job_size  # the upstream's copy too
        await system.create(display_name="one more")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.create(display_name="one too many again")
        assert_storage_quota(caught.value, "max_stored_bytes")


async def test_a_tenants_own_storage_quota_comes_from_the_tenants_file(
    make_system: SystemFactory,
) -> None:
    async with make_system(with_worker=False) as system:
        tenants = dict(system.tenants)
        tenants["team-a"] = dataclasses.replace(tenants["team-a"], quotas={"max_datasets": 1})
        write_tenant_files(system.tenants_file.parent, list(tenants.values()))
        await asyncio.sleep(1.1)  # the file is looked at again at most once a second
        await system.upload(jsonl(20))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.upload(jsonl(20, "second"))
        assert_storage_quota(caught.value, "max_datasets")
        for n in range(2):  # team-b keeps the default
            await system.upload(jsonl(20, f"b{n}"), tenant="team-b")


# DeleteDataset and ListDatasets.


async def test_delete_dataset_is_the_owners_alone_and_jobs_keep_their_copy(
    api_only: System,
) -> None:
    system = api_only
    dataset = await system.upload(jsonl(20))
    job = await system.create(dataset=dataset.name, training_examples=[])
    for name, tenant in [(dataset.name, "team-b"), (f"datasets/{random_id('d')}", "team-a")]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await delete_dataset(system, name, tenant)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await get_dataset(system, dataset.name) == dataset  # team-b's try changed nothing
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await delete_dataset(system, "tuningJobs/x")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in violations(caught.value)
    await delete_dataset(system, dataset.name)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get_dataset(system, dataset.name)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await delete_dataset(system, dataset.name)  # once only
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await usage(system)).datasets == 0
    await system.start_worker()
    await system.wait_for(job.name, {State.RUNNING})  # trains on its own copy


async def test_list_datasets_pages_newest_first_with_tokens_of_its_own(api_only: System) -> None:
    system = api_only
    uploaded = [await system.upload(jsonl(20, f"l{n}"), display_name=f"d{n}") for n in range(5)]
    names, token, pages = [], "", 0
    while True:
        page = await list_datasets(system, page_size=2, page_token=token)
        names += [d.name for d in page.datasets]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert names == [d.name for d in reversed(uploaded)]
    assert pages == 3
    assert (await list_datasets(system)).datasets[0] == uploaded[-1]  # the whole resource
    assert not (await list_datasets(system, "team-b")).datasets
    first = await list_datasets(system, page_size=2)
    for tenant, bad in [("team-b", first.next_page_token), ("team-a", "not-a-token")]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await list_datasets(system, tenant, page_token=bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in violations(caught.value)
    for _ in range(2):
        await system.create()
    jobs_token = (await system.list_jobs(page_size=1)).next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # another listing's token
        await list_datasets(system, page_token=jobs_token)
    assert "page_token" in violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_datasets(system, page_size=-1)
    assert "page_size" in violations(caught.value)


# Retention.


async def test_finished_jobs_past_retention_are_removed_and_others_kept(system: System) -> None:
    done = await system.create(display_name="done")
    also_done = await system.create(display_name="also done")
    for job in (done, also_done):
        assert (await system.finish_training(job.name)).state == State.SUCCEEDED
    cancelled = await system.create(display_name="cancelled")
    await system.cancel(cancelled.name)
    await system.wait_for(cancelled.name, {State.CANCELLED})
    late = await system.create(display_name="started after the others ended")
    await system.wait_for(late.name, {State.RUNNING})
    deletes_upstream = await system.upstream_requests("tunedModels.delete")
    pass_ = retention(system, now_s=time.time() + 30 * DAY_S + 1, jobs_s=30 * DAY_S)
    in_time = retention(system, now_s=time.time() + 29 * DAY_S, jobs_s=30 * DAY_S)
    assert (await in_time.prune("team-a")).jobs == 0
    # Two workers' passes at once remove each job once.
    removed = await asyncio.gather(pass_.prune("team-a"), pass_.prune("team-a"))
    gone = {done.name, also_done.name, cancelled.name}
    assert sum(r.jobs for r in removed) == len(gone)
    for name in gone:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.get(name)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await system.get(late.name)).state == State.RUNNING
    listed = {j.name for j in (await system.list_jobs()).tuning_jobs}
    assert not listed & gone
    # The tuned models stay the tenant's: retention deleted nothing upstream.
    assert await system.upstream_requests("tunedModels.delete") == deletes_upstream
    # The removed jobs' examples went with them; the job kept keeps its own.
    assert (await usage(system)).stored_bytes == job_bytes()


async def test_the_workers_sweep_removes_finished_jobs_past_a_short_retention(
    make_system: SystemFactory,
) -> None:
    async with make_system(job_retention_s=0.5, sweep_interval_s=0.05) as system:
        job = await system.create()
        await system.cancel(job.name)
        await system.wait_for(job.name, {State.CANCELLED})
        kept = await system.create(display_name="unfinished")

        async def removed() -> bool:
            try:
                await system.get(job.name)
            except grpc.aio.AioRpcError as error:
                return error.code() == grpc.StatusCode.NOT_FOUND
            return False

        await system.eventually(removed)
        assert (await system.get(kept.name)).state in {State.QUEUED, State.CREATING, State.RUNNING}


async def test_datasets_unused_past_retention_are_removed_and_a_use_keeps_one(
    api_only: System,
) -> None:
    system = api_only
    unused = await system.upload(jsonl(20, "unused"))
    used = await system.upload(jsonl(20, "used"))
    uploaded_by_s = time.time()
    await asyncio.sleep(0.05)
    await system.create(dataset=used.name, training_examples=[])
    # A pass whose cutoff falls between the uploads and the use: only `unused` goes.
    cutoff = retention(system, now_s=uploaded_by_s + 0.02 + DAY_S, datasets_s=DAY_S)
    ahead = retention(system, now_s=time.time() + 30 * DAY_S, datasets_s=30 * DAY_S - 1)
    removed = await asyncio.gather(cutoff.prune("team-a"), cutoff.prune("team-a"))
    assert sum(r.datasets for r in removed) == 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get_dataset(system, unused.name)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await get_dataset(system, used.name) == used
    assert (await usage(system)).datasets == 1
    assert (await ahead.prune("team-a")).datasets == 1  # a month later it goes too
    assert (await usage(system)).datasets == 0
    assert not (await list_datasets(system)).datasets


async def test_zero_retention_keeps_everything(api_only: System) -> None:
    system = api_only
    dataset = await system.upload(jsonl(20))
    job = await system.create()
    await system.cancel(job.name)
    forever = retention(system, now_s=time.time() + 3650 * DAY_S)
    assert (await forever.prune("team-a")).jobs == 0
    assert await get_dataset(system, dataset.name) == dataset
    assert (await system.get(job.name)).state == State.CANCELLED
