"""Every RPC called by one tenant on another tenant's resources: sees nothing, changes nothing."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from service.tuning_servicer import SERVICE
from tests.harness import State, System
from tests.rpc_errors import violations
from tuning.v1 import credential_service_pb2, tuning_service_pb2

Attempt = Callable[[System, dict[str, str]], Awaitable[None]]


async def refused(call: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code
    return caught.value


async def create(s: System, a: dict[str, str]) -> None:
    # The same request_id makes team-b its own job; team-a's dataset does not exist for it.
    mine = await s.create("team-b", request_id="shared-id")
    assert mine.name != a["job"]
    error = await refused(
        s.create("team-b", dataset=a["dataset"], training_examples=[]),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "not found" in violations(error)["tuning_job.dataset"]


async def get(s: System, a: dict[str, str]) -> None:
    await refused(s.get(a["job"], "team-b"), grpc.StatusCode.NOT_FOUND)


async def list_jobs(s: System, a: dict[str, str]) -> None:
    for request in ({}, {"filter": "state = QUEUED"}, {"filter": 'labels.owner = "a"'}):
        names = [j.name for j in (await s.list_jobs("team-b", **request)).tuning_jobs]
        assert a["job"] not in names


async def cancel(s: System, a: dict[str, str]) -> None:
    await refused(s.cancel(a["job"], "team-b"), grpc.StatusCode.NOT_FOUND)


async def delete(s: System, a: dict[str, str]) -> None:
    await refused(s.delete(a["job"], "team-b"), grpc.StatusCode.NOT_FOUND)


async def retune(s: System, a: dict[str, str]) -> None:
    request = tuning_service_pb2.RetuneTuningJobRequest(
        name=a["job"], base_model="models/gemini-1.0-pro-001"
    )
    error = await refused(
        s.stub.RetuneTuningJob(request, metadata=s.auth("team-b")), grpc.StatusCode.NOT_FOUND
    )
    assert error.details() == f"{a['job']} not found"  # the words for a missing job


async def watch(s: System, a: dict[str, str]) -> None:
    request = tuning_service_pb2.WatchTuningJobRequest(name=a["job"])

    async def first_answer() -> None:
        async for _ in s.stub.WatchTuningJob(request, metadata=s.auth("team-b"), timeout=5):
            raise AssertionError("another tenant's job was sent")

    error = await refused(first_answer(), grpc.StatusCode.NOT_FOUND)
    assert error.details() == f"{a['job']} not found"  # the words for a missing job


async def list_events(s: System, a: dict[str, str]) -> None:
    request = tuning_service_pb2.ListTuningJobEventsRequest(name=a["job"])
    error = await refused(
        s.stub.ListTuningJobEvents(request, metadata=s.auth("team-b")), grpc.StatusCode.NOT_FOUND
    )
    assert error.details() == f"{a['job']} not found"  # the words for a missing job


async def upload(s: System, a: dict[str, str]) -> None:
    rows = [{"text_input": str(n), "output": "b"} for n in range(20)]
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    assert (await s.upload(content, tenant="team-b")).name != a["dataset"]


async def get_dataset(s: System, a: dict[str, str]) -> None:
    request = tuning_service_pb2.GetDatasetRequest(name=a["dataset"])
    await refused(s.stub.GetDataset(request, metadata=s.auth("team-b")), grpc.StatusCode.NOT_FOUND)


async def list_datasets(s: System, a: dict[str, str]) -> None:
    request = tuning_service_pb2.ListDatasetsRequest()
    listed = await s.stub.ListDatasets(request, metadata=s.auth("team-b"))
    assert a["dataset"] not in [d.name for d in listed.datasets]


async def delete_dataset(s: System, a: dict[str, str]) -> None:
    request = tuning_service_pb2.DeleteDatasetRequest(name=a["dataset"])
    await refused(
        s.stub.DeleteDataset(request, metadata=s.auth("team-b")), grpc.StatusCode.NOT_FOUND
    )
    still = tuning_service_pb2.GetDatasetRequest(name=a["dataset"])
    assert (await s.stub.GetDataset(still, metadata=s.auth("team-a"))).name == a["dataset"]


ATTEMPTS: dict[str, Attempt] = {
    "CreateTuningJob": create,
    "GetTuningJob": get,
    "WatchTuningJob": watch,
    "ListTuningJobEvents": list_events,
    "ListTuningJobs": list_jobs,
    "CancelTuningJob": cancel,
    "DeleteTuningJob": delete,
    "RetuneTuningJob": retune,
    "UploadDataset": upload,
    "GetDataset": get_dataset,
    "ListDatasets": list_datasets,
    "DeleteDataset": delete_dataset,
}


def test_every_tuning_rpc_has_a_cross_tenant_attempt() -> None:
    assert {m.name for m in SERVICE.methods} == set(ATTEMPTS)


async def test_no_rpc_reaches_another_tenants_resources(api_only: System) -> None:
    rows = [{"text_input": str(n), "output": "a"} for n in range(20)]
    dataset = await api_only.upload("".join(json.dumps(r) + "\n" for r in rows).encode())
    job = await api_only.create(request_id="shared-id", labels={"owner": "a"})
    resources = {"job": job.name, "dataset": dataset.name}
    for attempt in ATTEMPTS.values():
        await attempt(api_only, resources)  # each asserts what team-b sees
    after = await api_only.get(job.name)  # and team-a's job is as it was
    assert (after.state, after.labels["owner"]) == (State.QUEUED, "a")
    dataset_request = tuning_service_pb2.GetDatasetRequest(name=dataset.name)
    assert await api_only.stub.GetDataset(dataset_request, metadata=api_only.auth()) == dataset


async def test_tenants_cannot_reach_credentials_at_all(api_only: System) -> None:
    request = credential_service_pb2.GetTenantCredentialRequest(tenant="team-a")
    for caller in ("team-a", "team-b"):
        await refused(
            api_only.admin_stub.GetTenantCredential(request, metadata=api_only.auth(caller)),
            grpc.StatusCode.PERMISSION_DENIED,
        )
