"""CredentialService: tenants' OAuth credentials checked at the token endpoint, then stored."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from google.rpc import error_details_pb2

from core.security.authorized_user import CLOUD_PLATFORM_SCOPE, TUNING_SCOPE
from tests.conftest import SystemFactory
from tests.harness import ADMIN, READONLY_SCOPE, VERTEX_TENANT, System
from tests.rpc_errors import detail, reason, violations
from tuning.v1 import credential_service_pb2

Source = credential_service_pb2.TenantCredential.Source
GUIDE = (
    "an API key is not enough for tuning: the Gemini API's tuning requires OAuth user "
    "credentials with the generative-language.tuning scope"
)
API_KEY = "AIzaSyD-fake-key-0123456789abcdefghijk"


def credential_json(system: System, tenant: str, **changes: str) -> str:
    """The tenant's authorized_user JSON, as gcloud writes it, with `changes`."""
    return json.dumps(system.tenants[tenant].authorized_user() | changes)


async def refused(system: System, tenant: str, text: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await system.set_credential(tenant, text)
    return caught.value


async def test_a_valid_credential_is_checked_stored_and_described(api_only: System) -> None:
    before = time.time()
    answer = await api_only.set_credential("team-b", credential_json(api_only, "team-b"))
    tenant = api_only.tenants["team-b"]
    assert answer.tenant == "team-b"
    assert answer.source == Source.REDIS
    assert answer.client_id == tenant.client_id
    assert list(answer.scopes) == [TUNING_SCOPE]
    assert answer.quota_project == "proj-b"
    assert answer.key_id == "k1"
    assert answer.last_refresh_time.seconds >= int(before)
    assert answer.update_time.seconds >= int(before)
    assert await api_only.upstream_requests("oauth.token") == 1  # the check's one refresh
    assert await api_only.get_credential("team-b") == answer


async def test_answers_never_carry_a_secret(api_only: System) -> None:
    tenant = api_only.tenants["team-a"]
    answers = [
        await api_only.set_credential("team-a", credential_json(api_only, "team-a")),
        await api_only.get_credential("team-a"),
    ]
    for answer in answers:
        wire = answer.SerializeToString()
        assert tenant.refresh_token.encode() not in wire
        assert tenant.client_secret.encode() not in wire
        assert b"ya29." not in wire


async def test_a_grant_without_the_tuning_scope_is_refused_naming_the_scope(
    api_only: System,
) -> None:
    error = await refused(api_only, "team-ro", credential_json(api_only, "team-ro"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(error) == "SCOPE_MISSING"
    message = error.details() or ""
    assert TUNING_SCOPE in message
    assert "again" in message
    assert READONLY_SCOPE not in message  # it names what is missing, not what was granted
    assert (await api_only.get_credential("team-ro")).source == Source.FILE  # nothing stored


@pytest.mark.parametrize(
    "text",
    [
        API_KEY,
        json.dumps(API_KEY),
        json.dumps({"api_key": API_KEY}),
        json.dumps({"key": API_KEY, "type": "api_key"}),
    ],
    ids=["bare", "json-string", "api_key-field", "key-field"],
)
async def test_an_api_key_is_refused_with_the_guides_reason(api_only: System, text: str) -> None:
    error = await refused(api_only, "team-a", text)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == GUIDE
    assert reason(error) == "API_KEY_NOT_ENOUGH"
    assert "authorized_user_json" in violations(error)
    assert API_KEY not in str(error.debug_error_string())
    assert await api_only.upstream_requests("oauth.token") == 0


async def test_another_credential_type_is_refused_with_the_guides_reason(api_only: System) -> None:
    text = json.dumps({"type": "service_account", "private_key": "-----BEGIN", "client_id": "1"})
    error = await refused(api_only, "team-a", text)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason(error) == "NOT_AUTHORIZED_USER"
    assert "'service_account'" in (error.details() or "")
    assert "requires OAuth user credentials" in (error.details() or "")


async def test_an_incomplete_credential_names_each_missing_field(api_only: System) -> None:
    text = json.dumps({"type": "authorized_user", "client_id": "x.apps.example"})
    error = await refused(api_only, "team-a", text)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == {
        "authorized_user_json.client_secret",
        "authorized_user_json.refresh_token",
    }


async def test_a_refused_refresh_is_a_failed_precondition_without_the_secret(
    api_only: System,
) -> None:
    revoked = "rt-revoked-" + "x" * 20
    text = credential_json(api_only, "team-a", refresh_token=revoked)
    error = await refused(api_only, "team-a", text)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(error) == "CREDENTIAL_REFUSED"
    assert "invalid_grant" in (error.details() or "")
    assert "Grant it again" in (error.details() or "")
    assert revoked not in (error.details() or "")


async def test_without_encryption_keys_nothing_is_stored(make_system: SystemFactory) -> None:
    async with make_system(encryption_keys_file="", with_worker=False) as system:
        error = await refused(system, "team-a", credential_json(system, "team-a"))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason(error) == "ENCRYPTION_NOT_CONFIGURED"
        assert "encryption at rest is not configured" in (error.details() or "")
        assert await system.upstream_requests("oauth.token") == 0
        assert not [k for k in await system.keys() if b":credential" in k]


async def test_an_unreachable_token_endpoint_is_unavailable_with_retry_info(
    make_system: SystemFactory,
) -> None:
    async with make_system(token_uri="http://127.0.0.1:9/token", with_worker=False) as system:
        error = await refused(system, "team-a", credential_json(system, "team-a"))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert detail(error, error_details_pb2.RetryInfo).retry_delay.seconds >= 1


@pytest.mark.parametrize("tenant", ["team-zz", ADMIN], ids=["unknown", "an-admin"])
async def test_only_tenants_can_have_credentials(api_only: System, tenant: str) -> None:
    for call in (
        api_only.set_credential(tenant, credential_json(api_only, "team-a")),
        api_only.get_credential(tenant),
        api_only.delete_credential(tenant),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_missing_tenant_field_is_invalid(api_only: System) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.get_credential("")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tenant" in violations(caught.value)


async def test_without_a_stored_credential_get_describes_the_file(api_only: System) -> None:
    answer = await api_only.get_credential("team-b")
    assert answer.source == Source.FILE
    assert answer.client_id == api_only.tenants["team-b"].client_id
    assert answer.quota_project == "proj-b"
    assert not answer.HasField("last_refresh_time")
    assert answer.HasField("update_time")


async def test_delete_falls_back_to_the_file_and_is_not_found_twice(api_only: System) -> None:
    await api_only.set_credential("team-a", credential_json(api_only, "team-a"))
    await api_only.delete_credential("team-a")
    assert (await api_only.get_credential("team-a")).source == Source.FILE
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.delete_credential("team-a")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_vertex_tenants_grant_needs_the_cloud_platform_scope(api_only: System) -> None:
    # team-a's grant carries only the Gemini API's tuning scope; team-v tunes on Vertex.
    error = await refused(api_only, VERTEX_TENANT, credential_json(api_only, "team-a"))
    assert reason(error) == "SCOPE_MISSING"
    assert CLOUD_PLATFORM_SCOPE in (error.details() or "")
    stored = await api_only.set_credential(VERTEX_TENANT, credential_json(api_only, VERTEX_TENANT))
    assert CLOUD_PLATFORM_SCOPE in stored.scopes
