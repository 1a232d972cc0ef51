"""Roles per service, and a tenants file that changes while the API runs."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from core.security.tenants import Role
from devstack.tenants import LocalTenant, write_tenants_file
from tests.harness import ADMIN, State, System
from tests.rpc_errors import reason
from tuning.v1 import credential_service_pb2, tuning_service_pb2

LIST = tuning_service_pb2.ListTuningJobsRequest()
RELOAD_WAIT_S = 5.0


async def list_as(system: System, token: str) -> grpc.StatusCode:
    """The status of ListTuningJobs called with `token`."""
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        await system.stub.ListTuningJobs(LIST, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def until_status(system: System, token: str, wanted: grpc.StatusCode) -> None:
    async def answered() -> bool:
        return await list_as(system, token) == wanted

    await system.eventually(answered, timeout_s=RELOAD_WAIT_S)


def rewrite(system: System, tenants: list[LocalTenant]) -> None:
    """Replace the tenants file, as a changed Kubernetes Secret does."""
    write_tenants_file(system.tenants_file.parent, tenants)


async def test_a_tenant_calling_the_credential_service_is_permission_denied(
    api_only: System,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.get_credential("team-a", caller="team-a")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason(caught.value) == "ADMIN_ROLE_REQUIRED"


async def test_an_admin_calling_the_tuning_service_is_permission_denied(api_only: System) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.list_jobs(ADMIN)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason(caught.value) == "TENANT_ROLE_REQUIRED"


async def test_the_credential_service_without_a_token_is_unauthenticated(
    api_only: System,
) -> None:
    request = credential_service_pb2.GetTenantCredentialRequest(tenant="team-a")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.admin_stub.GetTenantCredential(request)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason(caught.value) == "TOKEN_INVALID"


async def test_reflection_lists_the_credential_service_without_a_token(api_only: System) -> None:
    channel: Any = api_only.channel
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # typed for sync channels
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {"tuning.v1.TuningService", "tuning.v1.CredentialService"} <= names


async def test_a_tenant_added_to_the_file_is_accepted_without_a_restart(api_only: System) -> None:
    newcomer = LocalTenant("team-new")
    assert await list_as(api_only, newcomer.token) == grpc.StatusCode.UNAUTHENTICATED
    rewrite(api_only, [*api_only.tenants.values(), newcomer])
    await until_status(api_only, newcomer.token, grpc.StatusCode.OK)
    assert await list_as(api_only, api_only.tenants["team-a"].token) == grpc.StatusCode.OK


async def test_a_rotated_token_replaces_the_old_one_without_a_restart(api_only: System) -> None:
    old = api_only.tenants["team-a"]
    rotated = dataclasses.replace(old, token="tok-rotated-" + old.token[4:])
    others = [t for t in api_only.tenants.values() if t.id != "team-a"]
    rewrite(api_only, [*others, rotated])
    await until_status(api_only, rotated.token, grpc.StatusCode.OK)
    assert await list_as(api_only, old.token) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_removed_tenant_is_refused_without_a_restart(api_only: System) -> None:
    gone = api_only.tenants["team-b"]
    rewrite(api_only, [t for t in api_only.tenants.values() if t.id != "team-b"])
    await until_status(api_only, gone.token, grpc.StatusCode.UNAUTHENTICATED)
    assert await list_as(api_only, api_only.tenants["team-a"].token) == grpc.StatusCode.OK


async def test_a_role_change_takes_effect_without_a_restart(api_only: System) -> None:
    promoted = dataclasses.replace(api_only.tenants["team-a"], role=Role.ADMIN)
    others = [t for t in api_only.tenants.values() if t.id != "team-a"]
    rewrite(api_only, [*others, promoted])
    await until_status(api_only, promoted.token, grpc.StatusCode.PERMISSION_DENIED)
    assert (await api_only.get_credential("team-b", caller="team-a")).tenant == "team-b"


async def test_a_file_that_does_not_parse_fails_closed_until_it_is_fixed(
    api_only: System, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    api_only.tenants_file.write_text('{"tenants": [{"id": "team-a", "token_sha2')

    async def complained() -> bool:
        await list_as(api_only, api_only.tenants["team-a"].token)  # a use triggers the look
        return "cannot be loaded" in caplog.text

    await api_only.eventually(complained, timeout_s=RELOAD_WAIT_S)
    assert str(api_only.tenants_file) in caplog.text
    for tenant in ("team-a", "team-b"):
        assert (
            await list_as(api_only, api_only.tenants[tenant].token) == grpc.StatusCode.UNAVAILABLE
        )
    # A later good version is taken up again.
    newcomer = LocalTenant("team-new")
    rewrite(api_only, [*api_only.tenants.values(), newcomer])
    await until_status(api_only, newcomer.token, grpc.StatusCode.OK)
    assert await list_as(api_only, api_only.tenants["team-a"].token) == grpc.StatusCode.OK


async def test_the_worker_follows_the_file_too(system: System) -> None:
    # The newcomer's credential file holds team-a's grant; the worker can use it only
    # once it has read the new tenants file that names that file.
    newcomer = LocalTenant("team-new")
    credential = json.dumps(system.tenants["team-a"].authorized_user())
    (system.tenants_file.parent / "team-new-oauth.json").write_text(credential)
    system.tenants[newcomer.id] = newcomer
    rewrite(system, list(system.tenants.values()))
    await until_status(system, newcomer.token, grpc.StatusCode.OK)
    job = await system.create(newcomer.id)
    done = await system.finish_training(job.name, newcomer.id)
    assert done.state == State.SUCCEEDED, done.error.message
