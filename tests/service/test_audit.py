"""The audit trail through real gRPC on real Redis: state-changing calls, refused ones too,
recorded with who, what, how it ended and the caller's request id; read by admins only,
newest first, filtered and paged; trimmed by its cap and its retention; and written as
one JSON line each to the logs."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.ai import generativelanguage_v1beta as glm
from google.genai import errors
from google.protobuf import field_mask_pb2

from core.redis.audit import AuditStore
from core.redis.client import connect
from core.redis.keys import Keys
from core.runtime.logs import JsonFormatter
from core.security.tenants import TenantDirectory
from service.audit import AuditTrail, Call
from tests.conftest import SystemFactory
from tests.harness import ADMIN, State, System, job_spec
from tests.rpc_errors import violations
from tests.service import test_gemini_facade_models as facade
from tests.service.test_aliases import Aliases, trained
from tests.service.test_vertex_express import call, client_of, jsonl, tune
from tuning.v1 import audit_service_pb2 as pb
from tuning.v1 import audit_service_pb2_grpc, dataset_pb2, tuning_service_pb2

pytestmark = pytest.mark.timeout(60)
UNKNOWN_JOB = "tuningJobs/j" + "a" * 19
JSONL_DATASET = dataset_pb2.Dataset(format=dataset_pb2.Dataset.Format.JSONL)


def with_id(system: System, request_id: str, tenant: str = "team-a") -> tuple[tuple[str, str], ...]:
    return (*system.auth(tenant), ("x-request-id", request_id))


async def records(system: System, caller: str = ADMIN, **fields: Any) -> list[pb.AuditRecord]:
    """Every record the query finds, page by page, newest first."""
    stub = audit_service_pb2_grpc.AuditServiceStub(system.channel)
    found: list[pb.AuditRecord] = []
    token = fields.pop("page_token", "")
    while True:
        request = pb.ListAuditRecordsRequest(page_token=token, **fields)
        page = await stub.ListAuditRecords(request, metadata=system.auth(caller))
        found += page.records
        token = page.next_page_token
        if not token:
            return found


async def recorded(system: System, request_id: str, **fields: Any) -> pb.AuditRecord:
    """The record of the call with `request_id`, once it is stored."""
    found: list[pb.AuditRecord] = []

    async def stored() -> bool:
        found[:] = [r for r in await records(system, **fields) if r.request_id == request_id]
        return bool(found)

    await system.eventually(stored)
    assert len(found) == 1, found
    return found[0]


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def create_request(**fields: Any) -> tuning_service_pb2.CreateTuningJobRequest:
    return tuning_service_pb2.CreateTuningJobRequest(tuning_job=job_spec(**fields))


async def test_each_state_changing_call_is_recorded_with_who_what_and_the_request_id(
    api_only: System,
) -> None:
    system, stub = api_only, api_only.stub
    job = await stub.CreateTuningJob(create_request(), metadata=with_id(system, "r-create"))
    cancel = tuning_service_pb2.CancelTuningJobRequest(name=job.name)
    assert (await stub.CancelTuningJob(cancel, metadata=with_id(system, "r-cancel"))).state == (
        State.CANCELLED
    )
    delete = tuning_service_pb2.DeleteTuningJobRequest(name=job.name)
    await stub.DeleteTuningJob(delete, metadata=with_id(system, "r-delete"))
    parts = [tuning_service_pb2.UploadDatasetRequest(dataset=JSONL_DATASET)]
    parts.append(tuning_service_pb2.UploadDatasetRequest(chunk=jsonl()))
    dataset = await stub.UploadDataset(iter(parts), metadata=with_id(system, "r-upload"))

    expected = {
        "r-create": ("create_job", "CreateTuningJob", job.name),
        "r-cancel": ("cancel_job", "CancelTuningJob", job.name),
        "r-delete": ("delete_job", "DeleteTuningJob", job.name),
        "r-upload": ("upload_dataset", "UploadDataset", dataset.name),
    }
    for request_id, (action, method, resource) in expected.items():
        record = await recorded(system, request_id, tenant="team-a")
        assert (record.principal, record.role, record.tenant) == ("team-a", "tenant", "team-a")
        assert (record.action, record.resource, record.outcome) == (action, resource, "OK")
        assert record.method == f"/tuning.v1.TuningService/{method}"
        assert record.time.seconds > 0
    newest_first = [r.request_id for r in await records(system, tenant="team-a")]
    assert newest_first == ["r-upload", "r-delete", "r-cancel", "r-create"]


async def test_an_admins_credential_set_is_recorded_on_the_tenant_without_the_secret(
    api_only: System,
) -> None:
    system = api_only
    secret_json = json.dumps(system.tenants["team-b"].authorized_user())
    await system.set_credential("team-b", secret_json)

    [record] = await _eventually_records(system, tenant="team-b", action="set_credential")
    assert (record.principal, record.role, record.tenant) == (ADMIN, "admin", "team-b")
    assert (record.resource, record.outcome) == ("tenants/team-b/credential", "OK")
    assert record.request_id  # the server made one up: the caller sent none
    refresh_token = system.tenants["team-b"].refresh_token
    assert refresh_token not in str(record) and "client_secret" not in str(record)


async def _eventually_records(
    system: System, count: int = 1, **fields: Any
) -> list[pb.AuditRecord]:
    """The records matching `fields`, once there are `count` of them (they are stored a
    moment after their calls end)."""
    found: list[pb.AuditRecord] = []

    async def any_found() -> bool:
        found[:] = await records(system, **fields)
        return len(found) >= count

    await system.eventually(any_found)
    return found


async def test_an_alias_move_says_from_and_to(system: System) -> None:
    first, second = await trained(system, 2)
    aliases = Aliases(system)
    await aliases.create("prod", first)
    await aliases.move("aliases/prod", second)

    [move] = await _eventually_records(system, tenant="team-a", action="move_alias")
    assert (move.resource, move.outcome, move.principal) == ("aliases/prod", "OK", "team-a")
    assert move.detail == f"from {first} to {second}"
    [create] = await records(system, tenant="team-a", action="create_alias")
    assert create.detail == f"to {first}"


async def test_refused_calls_are_recorded_with_their_code_and_dry_runs_are_not(
    api_only: System,
) -> None:
    system, stub = api_only, api_only.stub
    bad = create_request(display_name="x" * 200)
    error = await refused(stub.CreateTuningJob(bad, metadata=with_id(system, "r-bad")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    dry = create_request()
    dry.validate_only = True
    await stub.CreateTuningJob(dry, metadata=with_id(system, "r-dry"))
    cancel = tuning_service_pb2.CancelTuningJobRequest(name=UNKNOWN_JOB)
    await refused(stub.CancelTuningJob(cancel, metadata=with_id(system, "r-missing")))
    # A tenant trying an admin's method: who tried what is kept.
    await refused(system.set_credential("team-a", "{}", caller="team-a"))

    record = await recorded(system, "r-bad", tenant="team-a")
    assert (record.action, record.outcome, record.resource) == (
        "create_job",
        "INVALID_ARGUMENT",
        "",
    )
    missing = await recorded(system, "r-missing", tenant="team-a")
    assert (missing.outcome, missing.resource) == ("NOT_FOUND", UNKNOWN_JOB)
    [denied] = await _eventually_records(system, tenant="team-a", action="set_credential")
    assert (denied.principal, denied.role, denied.outcome) == (
        "team-a",
        "tenant",
        "PERMISSION_DENIED",
    )
    assert "r-dry" not in [r.request_id for r in await records(system)]


async def test_a_caller_who_is_no_one_is_logged_but_not_stored(
    api_only: System, caplog: pytest.LogCaptureFixture
) -> None:
    system = api_only
    caplog.set_level(logging.INFO, logger="tuning.audit")
    anonymous = (("authorization", "Bearer nobody"), ("x-request-id", "r-anon"))
    error = await refused(system.stub.CreateTuningJob(create_request(), metadata=anonymous))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED

    lines = [r for r in caplog.records if r.name == "tuning.audit"]
    assert [r.audit["request_id"] for r in lines] == ["r-anon"]  # type: ignore[attr-defined]
    assert lines[0].audit["outcome"] == "UNAUTHENTICATED"  # type: ignore[attr-defined]
    assert lines[0].audit["principal"] == ""  # type: ignore[attr-defined]
    assert not [k for k in await system.keys() if k.endswith(b":audit")]


async def test_each_record_is_one_json_log_line(
    api_only: System, caplog: pytest.LogCaptureFixture
) -> None:
    system = api_only
    caplog.set_level(logging.INFO, logger="tuning.audit")
    job = await system.stub.CreateTuningJob(create_request(), metadata=with_id(system, "r-log"))

    [line] = [r for r in caplog.records if r.name == "tuning.audit"]
    entry = json.loads(JsonFormatter().format(line))
    assert entry["logger"] == "tuning.audit"
    assert entry["audit"]["action"] == "create_job"
    assert entry["audit"]["resource"] == job.name
    assert entry["audit"]["request_id"] == "r-log"
    assert entry["audit"]["principal"] == "team-a"
    assert entry["audit"]["outcome"] == "OK"
    assert entry["audit"]["time"].endswith("Z")


async def test_only_admins_read_the_trail_and_its_bounds_are_checked(api_only: System) -> None:
    system = api_only
    error = await refused(records(system, caller="team-a"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    for fields, field in (
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_token": "x" * 500}, "page_token"),
        ({"page_size": -1}, "page_size"),
        ({"tenant": "Team A"}, "tenant"),
        ({"resource": "r" * 300}, "resource"),
    ):
        error = await refused(records(system, **fields))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations(error)


async def test_every_tenants_trail_merges_newest_first_and_pages(api_only: System) -> None:
    system, stub = api_only, api_only.stub
    made = []
    for n, tenant in enumerate(["team-a", "team-b", "team-a", "team-b", "team-a"]):
        job = await stub.CreateTuningJob(
            create_request(), metadata=with_id(system, f"r-{n}", tenant)
        )
        made.append((f"r-{n}", job.name))
        await recorded(system, f"r-{n}", tenant=tenant)  # each stored before the next call

    one_by_one = await records(system, page_size=1)
    assert [r.request_id for r in one_by_one] == [rid for rid, _ in reversed(made)]
    assert [r.tenant for r in one_by_one] == ["team-a", "team-b", "team-a", "team-b", "team-a"]
    by_resource = await records(system, resource=made[1][1])
    assert [r.request_id for r in by_resource] == ["r-1"]
    assert await records(system, action="delete_job") == []


async def test_the_cap_and_the_retention_trim_a_tenants_trail(make_system: SystemFactory) -> None:
    async with make_system(with_worker=False, audit_max_records=3) as system:
        for n in range(5):
            cancel = tuning_service_pb2.CancelTuningJobRequest(name=UNKNOWN_JOB)
            await refused(system.stub.CancelTuningJob(cancel, metadata=with_id(system, f"r-{n}")))
        await recorded(system, "r-4", tenant="team-a")
        assert [r.request_id for r in await records(system)] == ["r-4", "r-3", "r-2"]
        key = Keys(system.settings.redis_key_prefix).audit_records("team-a")
        assert await system.redis.xlen(key) == 3

    async with make_system(with_worker=False, audit_retention_s=0.5) as system:
        await system.stub.CreateTuningJob(create_request(), metadata=with_id(system, "r-old"))
        await recorded(system, "r-old")

        async def aged_out() -> bool:
            return await records(system) == []

        await system.eventually(aged_out, timeout_s=5.0)
        key = Keys(system.settings.redis_key_prefix).audit_records("team-a")

        async def expired() -> bool:
            return not await system.redis.exists(key)

        await system.eventually(expired, timeout_s=5.0)


@pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning")
async def test_the_express_facades_create_and_cancel_are_recorded(
    make_system: SystemFactory,
) -> None:
    async with make_system(express_listen="127.0.0.1:0", with_worker=False) as system:
        dataset = await system.upload(jsonl())
        client = client_of(system)
        job = await tune(client, dataset.name)
        assert job.name is not None
        await call(client.tunings.cancel, name=job.name)
        name = "tuningJobs/" + job.name.rpartition("/")[2]

        found = await _eventually_records(system, 2, tenant="team-a", resource=name)
        actions = {(r.action, r.method, r.outcome, r.principal) for r in found}
        assert actions == {
            ("create_job", "/vertex_express/tuningJobs.create", "OK", "team-a"),
            ("cancel_job", "/vertex_express/tuningJobs.cancel", "OK", "team-a"),
        }
        assert all(r.request_id for r in found)


async def test_the_gemini_facades_changes_are_recorded(api_only: System) -> None:
    system = api_only
    await facade.create(system, facade.model(), "numbers-one")
    client, key = facade.client_of(system), facade.api_key(system)
    update = glm.UpdateTunedModelRequest(
        tuned_model=glm.TunedModel(name="tunedModels/numbers-one", description="v2"),
        update_mask=field_mask_pb2.FieldMask(paths=["description"]),
    )
    await client.update_tuned_model(update, metadata=key)
    await client.delete_tuned_model(name="tunedModels/numbers-one", metadata=key)

    async def all_three() -> bool:
        return len(await records(system, resource="tunedModels/numbers-one")) == 3

    await system.eventually(all_three)
    found = await records(system, resource="tunedModels/numbers-one")
    assert [(r.action, r.outcome, r.principal) for r in found] == [
        ("delete_tuned_model", "OK", "team-a"),
        ("update_tuned_model", "OK", "team-a"),
        ("create_tuned_model", "OK", "team-a"),
    ]
    assert found[1].detail == "fields description"


async def test_a_redis_failure_drops_the_stored_copy_but_not_the_log_line(
    api_only: System, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    dead = connect(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    store = AuditStore(dead, Keys("tj"), time.time, retention_s=60.0, max_records=10)
    trail = AuditTrail(store, TenantDirectory.from_file(api_only.tenants_file), time.time)
    trail.record(
        Call(
            method="/tuning.v1.TuningService/CancelTuningJob",
            action="cancel_job",
            principal="team-a",
            role="tenant",
            tenant="team-a",
            resource=UNKNOWN_JOB,
            outcome="OK",
            request_id="r-dead",
        )
    )
    await trail.aclose()
    await dead.aclose()

    lines = [r for r in caplog.records if r.name == "tuning.audit"]
    assert [r.audit["request_id"] for r in lines] == ["r-dead"]  # type: ignore[attr-defined]
    assert any("1 audit records not stored" in r.getMessage() for r in caplog.records)


@pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning")
async def test_the_express_facades_refusals_at_authentication_are_recorded(
    make_system: SystemFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tuning.audit")
    async with make_system(express_listen="127.0.0.1:0", with_worker=False) as system:
        dataset = await system.upload(jsonl())
        # An admin's token on a tenant's route: who tried what is kept, in the admin's stream.
        with pytest.raises(errors.ClientError):
            await tune(client_of(system, token=system.tenants[ADMIN].token), dataset.name)
        [denied] = await _eventually_records(system, action="create_job")
        assert (denied.principal, denied.role, denied.tenant, denied.outcome) == (
            ADMIN,
            "admin",
            "",
            "PERMISSION_DENIED",
        )
        assert denied.method == "/vertex_express/tuningJobs.create"
        # A token of no one: logged, not stored.
        with pytest.raises(errors.ClientError):
            await tune(client_of(system, token="nobody"), dataset.name)
        lines = [r.audit for r in caplog.records if r.name == "tuning.audit"]  # type: ignore[attr-defined]
        assert [(a["principal"], a["outcome"]) for a in lines if a["action"] == "create_job"] == [
            (ADMIN, "PERMISSION_DENIED"),
            ("", "UNAUTHENTICATED"),
        ]
        assert len(await records(system, action="create_job")) == 1
