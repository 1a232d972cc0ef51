"""Cancel and delete, before and after the upstream knows the job."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2

from tests.harness import State, System


async def test_cancel_while_queued_never_reaches_upstream(api_only: System) -> None:
    job = await api_only.create()
    cancelled = await api_only.cancel(job.name)
    assert cancelled.state == State.CANCELLED
    assert cancelled.error.code == code_pb2.CANCELLED

    # Let a worker drain the queue: a later job succeeding proves it has looked.
    await api_only.start_worker()
    sentinel = await api_only.create(display_name="sentinel")
    await api_only.finish_training(sentinel.name)
    assert (await api_only.get(job.name)).state == State.CANCELLED
    assert await api_only.upstream_requests("tunedModels.create") == 1  # the sentinel's


async def test_cancel_while_running_cancels_and_deletes_upstream(system: System) -> None:
    job = await system.create()
    running = await system.wait_for(job.name, {State.RUNNING})
    answer = await system.cancel(job.name)
    assert answer.state in (State.CANCELLING, State.CANCELLED)
    done = await system.wait_for(job.name, {State.CANCELLED, State.SUCCEEDED, State.FAILED})
    assert done.state == State.CANCELLED
    assert done.tuned_model == running.tuned_model
    assert await system.upstream_requests("operations.cancel") == 1
    assert await system.upstream_requests("tunedModels.delete") == 1
    assert (await system.upstream_stats())["models"] == 0


async def test_cancel_is_idempotent_and_refused_after_success(system: System) -> None:
    job = await system.create()
    await system.cancel(job.name)
    await system.wait_for(job.name, {State.CANCELLED})
    assert (await system.cancel(job.name)).state == State.CANCELLED

    other = await system.create(display_name="to finish")
    await system.finish_training(other.name)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await system.cancel(other.name)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_delete_hides_the_job_and_deletes_the_model_upstream(system: System) -> None:
    job = await system.create()
    await system.finish_training(job.name)
    assert (await system.upstream_stats())["models"] == 1
    await system.delete(job.name)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await system.get(job.name)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await system.list_jobs()).tuning_jobs == []
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await system.delete(job.name)
    assert again.value.code() == grpc.StatusCode.NOT_FOUND

    async def record_gone() -> bool:
        return not [k for k in await system.keys() if b":job:" in k]

    await system.eventually(record_gone)
    assert (await system.upstream_stats())["models"] == 0


async def test_cancel_while_creating_waits_for_upstream_then_cancels_there(
    system: System,
) -> None:
    await system.inject_faults({"route": "tunedModels.create", "hold_s": 1.0})
    job = await system.create()
    await system.wait_for(job.name, {State.CREATING})
    assert (await system.cancel(job.name)).state == State.CANCELLING
    done = await system.wait_for(job.name, {State.CANCELLED, State.SUCCEEDED, State.FAILED})
    assert done.state == State.CANCELLED
    assert done.tuned_model  # the model the create made was recorded, then cancelled
    assert await system.upstream_requests("operations.cancel") == 1
    assert (await system.upstream_stats())["models"] == 0  # and deleted
