"""CreateTuningJob with a request_id is idempotent (AIP-155)."""

from __future__ import annotations

import grpc
import pytest

from tests.harness import System
from tests.rpc_errors import reason


async def test_a_repeated_request_returns_the_same_job(system: System) -> None:
    first = await system.create(request_id="order-42")
    again = await system.create(request_id="order-42")
    assert again.name == first.name
    assert len((await system.list_jobs()).tuning_jobs) == 1
    await system.finish_training(first.name)
    assert await system.upstream_requests("tunedModels.create") == 1


async def test_the_same_request_id_with_another_job_is_refused(api_only: System) -> None:
    await api_only.create(request_id="order-42")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.create(request_id="order-42", display_name="something else")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason(caught.value) == "REQUEST_ID_REUSED"
    assert "different job" in (caught.value.details() or "")


async def test_jobs_without_request_id_are_distinct(api_only: System) -> None:
    a = await api_only.create()
    b = await api_only.create()
    assert a.name != b.name
