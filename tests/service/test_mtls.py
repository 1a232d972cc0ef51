"""Mutual TLS: a client certificate's Common Name names the tenant; others are refused."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.runtime.settings import Settings
from core.security.tenants import TenantDirectory
from service.process import ApiServer, start_api
from service.tls import server_credentials
from tests.harness import System, job_spec
from tests.rpc_errors import reason
from tests.service.pki import Authority, Issued
from tuning.v1 import (
    credential_service_pb2,
    credential_service_pb2_grpc,
    tuning_service_pb2,
    tuning_service_pb2_grpc,
)


@dataclass
class TlsApi:
    """An API listening with mutual TLS, next to the plaintext one of `system`."""

    system: System
    server: ApiServer
    ca: Authority
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def channel(self, client: Issued | None) -> grpc.aio.Channel:
        """A channel presenting `client`'s certificate (None: no certificate)."""
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca.cert_pem,
            private_key=client.key_pem if client else None,
            certificate_chain=client.cert_pem if client else None,
        )
        channel = grpc.aio.secure_channel(f"127.0.0.1:{self.server.port}", credentials)
        self.channels.append(channel)
        return channel

    def stub(self, client: Issued | None) -> tuning_service_pb2_grpc.TuningServiceAsyncStub:
        return tuning_service_pb2_grpc.TuningServiceStub(self.channel(client))

    def bearer(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return self.system.auth(tenant)

    async def stop(self) -> None:
        for channel in self.channels:
            await channel.close()
        await self.server.stop(0)


async def start_tls_api(system: System, tmp_path: Path, *, client_ca: bool) -> TlsApi:
    ca = Authority()
    cert, key = ca.server().write(tmp_path, "server")
    ca_file = tmp_path / "client-ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    settings = dataclasses.replace(
        system.settings,
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        tls_client_ca_file=str(ca_file) if client_ca else "",
    )
    directory = TenantDirectory.watch(system.tenants_file)
    server = await start_api(settings, system.redis, directory, listen="127.0.0.1:0")
    return TlsApi(system, server, ca)


@pytest.fixture
async def mtls(api_only: System, tmp_path: Path) -> AsyncIterator[TlsApi]:
    api = await start_tls_api(api_only, tmp_path, client_ca=True)
    yield api
    await api.stop()


LIST = tuning_service_pb2.ListTuningJobsRequest()


async def test_a_certificate_naming_a_tenant_authenticates_it_without_a_token(
    mtls: TlsApi,
) -> None:
    a = mtls.stub(mtls.ca.client("team-a"))
    b = mtls.stub(mtls.ca.client("team-b"))
    request = tuning_service_pb2.CreateTuningJobRequest(tuning_job=job_spec())
    job = await a.CreateTuningJob(request)
    assert [j.name for j in (await a.ListTuningJobs(LIST)).tuning_jobs] == [job.name]
    assert list((await b.ListTuningJobs(LIST)).tuning_jobs) == []
    assert (await mtls.system.get(job.name, "team-a")).name == job.name  # same tenant by token


async def test_a_bearer_token_of_the_same_tenant_is_accepted(mtls: TlsApi) -> None:
    stub = mtls.stub(mtls.ca.client("team-a"))
    await stub.ListTuningJobs(LIST, metadata=mtls.bearer("team-a"))


async def test_a_bearer_token_of_another_tenant_is_permission_denied(mtls: TlsApi) -> None:
    stub = mtls.stub(mtls.ca.client("team-a"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListTuningJobs(LIST, metadata=mtls.bearer("team-b"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason(caught.value) == "PRINCIPAL_MISMATCH"


@pytest.mark.parametrize("token", [None, "team-a"], ids=["no-token", "valid-token"])
async def test_a_certificate_for_an_unknown_common_name_is_refused(
    mtls: TlsApi, token: str | None
) -> None:
    stub = mtls.stub(mtls.ca.client("stranger"))
    metadata = mtls.bearer(token) if token else ()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListTuningJobs(LIST, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason(caught.value) == "CERTIFICATE_UNKNOWN"


async def test_an_admin_certificate_reaches_the_credential_service_only(mtls: TlsApi) -> None:
    channel = mtls.channel(mtls.ca.client("ops"))
    admin = credential_service_pb2_grpc.CredentialServiceStub(channel)
    request = credential_service_pb2.GetTenantCredentialRequest(tenant="team-a")
    answer = await admin.GetTenantCredential(request)
    assert answer.source == credential_service_pb2.TenantCredential.Source.FILE
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tuning_service_pb2_grpc.TuningServiceStub(channel).ListTuningJobs(LIST)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason(caught.value) == "TENANT_ROLE_REQUIRED"


@pytest.mark.parametrize("client", ["none", "other-ca"])
async def test_the_handshake_refuses_clients_without_a_certificate_of_the_ca(
    mtls: TlsApi, client: str
) -> None:
    issued = None if client == "none" else Authority("rogue CA").client("team-a")
    stub = mtls.stub(issued)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListTuningJobs(LIST, metadata=mtls.bearer("team-a"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_health_needs_a_certificate_but_no_token(mtls: TlsApi) -> None:
    channel: Any = mtls.channel(mtls.ca.client("stranger"))
    health: Any = health_pb2_grpc.HealthStub(channel)  # typed for sync channels
    answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_server_only_tls_still_needs_a_bearer_token(api_only: System, tmp_path: Path) -> None:
    api = await start_tls_api(api_only, tmp_path, client_ca=False)
    try:
        stub = api.stub(None)
        await stub.ListTuningJobs(LIST, metadata=api.bearer("team-a"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListTuningJobs(LIST)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await api.stop()


@pytest.mark.parametrize(
    "files",
    [
        {"tls_cert_file": "server.crt"},
        {"tls_client_ca_file": "client-ca.crt"},
        {"tls_cert_file": "missing.crt", "tls_key_file": "missing.key"},
    ],
    ids=["cert-without-key", "client-ca-without-cert", "unreadable"],
)
def test_a_partial_or_unreadable_tls_setup_stops_the_process(files: dict[str, Any]) -> None:
    with pytest.raises(SystemExit) as stopped:
        server_credentials(Settings(**files))
    assert "configuration error" in str(stopped.value)
