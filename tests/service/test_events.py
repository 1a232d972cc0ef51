"""ListTuningJobEvents and stalls, through a real API, Redis, worker and emulator: what
happened to a job, in order, with why it was retried; paged; bounded; gone with the job."""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import SystemFactory
from tests.harness import State, System
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

pytestmark = pytest.mark.timeout(60)
Event = tuning_service_pb2.TuningJobEvent
K = Event.Kind


async def events_of(
    system: System, name: str, tenant: str = "team-a", page_size: int = 0, token: str = ""
) -> tuning_service_pb2.ListTuningJobEventsResponse:
    request = tuning_service_pb2.ListTuningJobEventsRequest(
        name=name, page_size=page_size, page_token=token
    )
    return await system.stub.ListTuningJobEvents(request, metadata=system.auth(tenant))


def kinds(page: tuning_service_pb2.ListTuningJobEventsResponse) -> list[int]:
    return [e.kind for e in page.events]


async def test_a_jobs_life_reads_as_its_events_in_order(system: System) -> None:
    created = await system.create()
    done = await system.finish_training(created.name)
    page = await events_of(system, done.name)
    assert kinds(page) == [K.ACCEPTED, K.ADMITTED, K.SUBMITTED, K.SUCCEEDED]
    accepted, admitted, submitted, succeeded = page.events
    assert accepted.time == created.create_time
    assert "20 inline examples" in accepted.message
    assert "admitted after" in admitted.message and "s in the queue" in admitted.message
    assert done.tuned_model in submitted.message
    assert succeeded.message == "succeeded after 10 steps"
    times = [e.time.ToNanoseconds() for e in page.events]
    assert times == sorted(times)
    assert {e.level for e in page.events} == {Event.INFO}
    assert page.next_page_token == ""  # ended, and every event read


async def test_a_retry_says_why_and_pages_walk_the_same_events(system: System) -> None:
    await system.inject_faults({"route": "tunedModels.create", "status": 503, "times": 2})
    done = await system.finish_training((await system.create()).name)
    whole = await events_of(system, done.name)
    retries = [e for e in whole.events if e.kind == K.RETRY]
    assert len(retries) == 2
    assert all(e.level == Event.WARNING and "UNAVAILABLE" in e.message for e in retries)
    assert "attempt 1 failed" in retries[0].message
    walked: list[Event] = []
    token = ""
    while True:
        page = await events_of(system, done.name, page_size=2, token=token)
        assert len(page.events) <= 2
        walked += page.events
        token = page.next_page_token
        if not token:
            break
    assert walked == list(whole.events)


async def test_an_unfinished_jobs_last_token_reads_what_happens_next(api_only: System) -> None:
    created = await api_only.create()
    first = await events_of(api_only, created.name)
    assert kinds(first) == [K.ACCEPTED] and first.next_page_token
    assert not (await events_of(api_only, created.name, token=first.next_page_token)).events
    await api_only.cancel(created.name)
    after = await events_of(api_only, created.name, token=first.next_page_token)
    assert kinds(after) == [K.CANCELLED] and after.next_page_token == ""


async def test_a_failed_job_ends_with_its_error(system: System) -> None:
    await system.inject_faults({"route": "tunedModels.create", "training": {"fail_at_step": 3}})
    done = await system.finish_training((await system.create()).name)
    assert done.state == State.FAILED
    last = (await events_of(system, done.name)).events[-1]
    assert (last.kind, last.level) == (K.FAILED, Event.ERROR)
    assert done.error.message in last.message


async def test_a_job_keeps_its_newest_events_only(make_system: SystemFactory) -> None:
    async with make_system(job_max_events=2) as system:
        await system.inject_faults({"route": "tunedModels.create", "status": 503, "times": 3})
        done = await system.finish_training((await system.create()).name)
        page = await events_of(system, done.name)
        # ACCEPTED is the record's own; the stream kept the two newest of six
        assert kinds(page) == [K.ACCEPTED, K.SUBMITTED, K.SUCCEEDED]


async def test_events_are_the_tenants_own_and_go_with_the_job(system: System) -> None:
    done = await system.finish_training((await system.create()).name)
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await events_of(system, done.name, tenant="team-b")
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as forged:
        await events_of(system, done.name, token="not-a-token")
    assert forged.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await system.delete(done.name)

    async def gone() -> bool:
        return not [k for k in await system.keys() if b":events:" in k]

    await system.eventually(gone)  # the worker's clean-up removed the stream with the job
    with pytest.raises(grpc.aio.AioRpcError) as deleted:
        await events_of(system, done.name)
    assert deleted.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_job_that_stops_moving_is_stalled_until_it_moves(
    make_system: SystemFactory,
) -> None:
    async with make_system(stall_after_s=0.3) as system:
        created = await system.create()
        running = await system.wait_for(created.name, {State.RUNNING})
        assert not running.HasField("stalled_since")

        async def stalled() -> bool:
            return (await system.get(created.name)).HasField("stalled_since")

        await system.eventually(stalled)  # the emulator's clock stands still: no step moves
        job = await system.get(created.name)
        assert await system.store.stalled_count("team-a") == 1
        stall = [e for e in (await events_of(system, job.name)).events if e.kind == K.STALLED]
        assert len(stall) == 1 and stall[0].level == Event.WARNING
        assert "no progress for" in stall[0].message
        system.clock.advance(2)  # two steps

        async def moving() -> bool:
            return not (await system.get(created.name)).HasField("stalled_since")

        await system.eventually(moving)
        assert await system.store.stalled_count("team-a") == 0
        events = (await events_of(system, job.name)).events
        assert [e.kind for e in events].count(K.RESUMED) >= 1
        await system.finish_training(created.name)
        assert await system.store.stalled_count("team-a") == 0


def test_every_kind_of_the_proto_is_one_the_domain_names() -> None:
    from core.domain.events import Kind

    assert {k.value for k in Kind} == set(Event.Kind.keys()) - {"KIND_UNSPECIFIED"}
    assert tuning_job_pb2.TuningJob.DESCRIPTOR.fields_by_name["stalled_since"]
