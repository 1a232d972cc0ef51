"""WatchTuningJob through a real API, Redis, worker and emulator: pushed changes, the end
after a terminal state, resuming, heartbeats, a second replica, a drain, and the bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2

from core.domain.job import Job
from core.domain.snapshots import Snapshot
from core.domain.states import JobState
from core.security.tenants import TenantDirectory
from service.convert import job_to_proto
from service.process import start_api
from service.status import Current
from service.watch import job_answer
from tests.conftest import SystemFactory
from tests.harness import State, System
from tests.rpc_errors import detail, reason
from tuning.v1 import tuning_service_pb2, tuning_service_pb2_grpc

pytestmark = pytest.mark.timeout(60)
Response = tuning_service_pb2.WatchTuningJobResponse


def watch(
    channel: grpc.aio.Channel,
    system: System,
    name: str,
    after_version: int = 0,
    tenant: str = "team-a",
) -> grpc.aio.UnaryStreamCall[tuning_service_pb2.WatchTuningJobRequest, Response]:
    stub: tuning_service_pb2_grpc.TuningServiceAsyncStub = (
        tuning_service_pb2_grpc.TuningServiceStub(channel)
    )
    request = tuning_service_pb2.WatchTuningJobRequest(name=name, after_version=after_version)
    return stub.WatchTuningJob(request, metadata=system.auth(tenant), timeout=30)


async def next_job(
    stream: AsyncIterator[Response] | grpc.aio.UnaryStreamCall[Any, Response],
) -> Response:
    """The next answer that carries the job (heartbeats skipped)."""
    async for answer in stream:
        if answer.HasField("job"):
            return answer
    raise AssertionError("the stream ended")


async def test_a_watch_follows_a_job_to_its_end_and_closes(system: System) -> None:
    created = await system.create()
    call = watch(system.channel, system, created.name)
    answers: list[Response] = []

    async def follow() -> None:
        async for answer in call:
            answers.append(answer)

    following = asyncio.create_task(follow())
    await system.wait_for(created.name, {State.RUNNING})
    await system.finish_training(created.name)
    await asyncio.wait_for(following, 20)
    assert await call.code() == grpc.StatusCode.OK
    jobs = [a.job for a in answers if a.HasField("job")]
    assert jobs[0].name == created.name
    assert jobs[-1].state == State.SUCCEEDED and jobs[-1].progress.completed_steps == 10
    assert State.RUNNING in {j.state for j in jobs}
    versions = [a.version for a in answers]
    assert versions == sorted(versions)  # a queue place moves without a write: same version
    assert len(set(versions)) >= len({j.state for j in jobs})
    # what was pushed is what GetTuningJob answers, the upstream never asked for it
    assert jobs[-1] == await system.get(created.name)


async def test_a_resumed_watch_sends_only_what_changed_since(system: System) -> None:
    job = await system.finish_training((await system.create()).name)
    first = await next_job(watch(system.channel, system, job.name))
    assert first.job.state == State.SUCCEEDED
    resumed = watch(system.channel, system, job.name, after_version=first.version)
    assert [a async for a in resumed] == []  # ended, nothing new: the stream just closes
    again = [
        a async for a in watch(system.channel, system, job.name, after_version=first.version - 1)
    ]
    assert [a.job for a in again] == [first.job]


async def test_an_idle_watch_beats_and_a_cancel_is_pushed(make_system: SystemFactory) -> None:
    async with make_system(with_worker=False, watch_heartbeat_s=0.2) as system:
        created = await system.create()
        call = watch(system.channel, system, created.name)
        stream = call.__aiter__()
        assert (await stream.__anext__()).job.state == State.QUEUED
        beat = await asyncio.wait_for(stream.__anext__(), 5)
        assert beat.HasField("heartbeat") and beat.version >= 1
        await system.cancel(created.name)
        cancelled = await asyncio.wait_for(next_job(stream), 5)
        assert cancelled.job.state == State.CANCELLED
        assert [a async for a in stream if a.HasField("job")] == []
        assert await call.code() == grpc.StatusCode.OK


async def test_a_write_through_one_replica_reaches_a_watcher_of_another(
    api_only: System,
) -> None:
    created = await api_only.create()
    with httpx.Client() as token_http:
        tenants = TenantDirectory.watch(api_only.tenants_file)
        other = await start_api(
            api_only.settings, api_only.redis, tenants, listen="127.0.0.1:0", token_http=token_http
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
                stream = watch(channel, api_only, created.name).__aiter__()
                assert (await stream.__anext__()).job.state == State.QUEUED
                await api_only.cancel(created.name)  # through the first replica
                pushed = await asyncio.wait_for(next_job(stream), 5)
                assert pushed.job.state == State.CANCELLED
        finally:
            await other.stop(1.0)


async def test_a_draining_replica_ends_its_watches_unavailable_to_resume(
    api_only: System,
) -> None:
    created = await api_only.create()
    with httpx.Client() as token_http:
        tenants = TenantDirectory.watch(api_only.tenants_file)
        other = await start_api(
            api_only.settings, api_only.redis, tenants, listen="127.0.0.1:0", token_http=token_http
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
            call = watch(channel, api_only, created.name)
            stream = call.__aiter__()
            first = await stream.__anext__()
            stopping = asyncio.create_task(other.stop(5.0))
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(stream.__anext__(), 5)
            await stopping
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(ended.value) == "SERVER_DRAINING"
    assert detail(ended.value, error_details_pb2.RetryInfo).retry_delay.ToNanoseconds() > 0
    # resumed on the replica still serving: a QUEUED job is sent again (its place may have
    # moved with no write to it), then its changes
    resumed = watch(api_only.channel, api_only, created.name, after_version=first.version)
    stream = resumed.__aiter__()
    assert (await next_job(stream)).job == first.job
    await api_only.cancel(created.name)
    assert (await next_job(stream)).job.state == State.CANCELLED


async def test_a_deleted_job_ends_its_watch_not_found(api_only: System) -> None:
    created = await api_only.create()
    stream = watch(api_only.channel, api_only, created.name).__aiter__()
    await stream.__anext__()
    await api_only.delete(created.name)
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(stream.__anext__(), 5)
    assert ended.value.code() == grpc.StatusCode.NOT_FOUND


async def test_another_tenants_job_and_a_bad_name_are_refused(api_only: System) -> None:
    created = await api_only.create()
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await next_job(watch(api_only.channel, api_only, created.name, tenant="team-b"))
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await next_job(watch(api_only.channel, api_only, "tuningJobs/" + "x" * 500))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_tenant_has_at_most_its_watches_on_a_replica(make_system: SystemFactory) -> None:
    async with make_system(with_worker=False, tenant_max_watches=2) as system:
        created = await system.create()
        open_calls = [watch(system.channel, system, created.name) for _ in range(2)]
        for call in open_calls:
            await call.__aiter__().__anext__()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await next_job(watch(system.channel, system, created.name))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason(refused.value) == "TOO_MANY_WATCHES"
        violation = detail(refused.value, error_details_pb2.QuotaFailure).violations[0]
        assert violation.subject == "tenant:team-a"
        theirs = await system.create(tenant="team-b")
        other = watch(system.channel, system, theirs.name, tenant="team-b")
        assert (await next_job(other)).job.name == theirs.name  # another tenant's slots
        open_calls[0].cancel()  # a closed stream gives its slot back

        async def slot_back() -> bool:
            call = watch(system.channel, system, created.name)
            try:
                return bool(await next_job(call))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                return False
            finally:
                call.cancel()

        await system.eventually(slot_back, timeout_s=5)


@pytest.mark.parametrize("snapshots", [0, 1, 300])  # answers under and over 127 bytes
def test_a_jobs_answer_is_the_message_it_would_serialize(snapshots: int) -> None:
    job = Job(
        id="j" + "a" * 19,
        tenant="team-a",
        base_model="models/gemini-1.5-flash-001-tuning",
        state=JobState.RUNNING,
        snapshots=tuple(Snapshot(step=s, epoch=1, mean_loss=0.5) for s in range(snapshots)),
    )
    answer = job_to_proto(job).SerializeToString()
    current = Current(job, answer, version=2**40 + 7)

    parsed = tuning_service_pb2.WatchTuningJobResponse.FromString(job_answer(current))

    expected = tuning_service_pb2.WatchTuningJobResponse(version=2**40 + 7)
    expected.job.ParseFromString(answer)
    assert parsed == expected and parsed.WhichOneof("event") == "job"
