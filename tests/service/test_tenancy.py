"""Callers are tenants: a token names one, and nobody sees another tenant's jobs."""

from __future__ import annotations

import grpc
import pytest

from tests.harness import System
from tests.rpc_errors import reason
from tuning.v1 import tuning_service_pb2


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer not-a-token"),), (("authorization", "Basic abc"),)],
    ids=["missing", "unknown", "not-bearer"],
)
async def test_calls_without_a_valid_token_are_unauthenticated(
    api_only: System, metadata: tuple[tuple[str, str], ...]
) -> None:
    request = tuning_service_pb2.ListTuningJobsRequest()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.stub.ListTuningJobs(request, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason(caught.value) == "TOKEN_INVALID"


async def test_another_tenants_job_does_not_exist_for_every_rpc(api_only: System) -> None:
    job = await api_only.create("team-a", request_id="same-id")
    calls = {
        "get": api_only.get(job.name, tenant="team-b"),
        "cancel": api_only.cancel(job.name, tenant="team-b"),
        "delete": api_only.delete(job.name, tenant="team-b"),
    }
    for rpc, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, rpc
    assert (await api_only.list_jobs("team-b")).tuning_jobs == []
    assert [j.name for j in (await api_only.list_jobs("team-a")).tuning_jobs] == [job.name]
    assert (await api_only.get(job.name, "team-a")).state == job.state  # untouched


async def test_request_ids_are_per_tenant(api_only: System) -> None:
    a = await api_only.create("team-a", request_id="shared")
    b = await api_only.create("team-b", request_id="shared", display_name="other")
    assert a.name != b.name
