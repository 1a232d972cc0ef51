"""The CredentialService servicer: read the request, call CredentialsApi, map the answer.

Only principals with role admin reach it (service.auth checks the role per service).
"""

from __future__ import annotations

from typing import Any

import grpc
import httpx
from google.protobuf import empty_pb2, timestamp_pb2

from core.redis.client import Redis
from core.redis.keys import Keys
from core.runtime.clock import Clock
from core.runtime.settings import Settings
from core.security.credential_store import CredentialStore
from core.security.crypto import KeyRingSource
from core.security.tenants import TenantDirectory
from service.auth import current_tenant
from service.credentials_api import CredentialInfo, CredentialsApi, Origin
from service.errors import mapped_errors
from service.oauth_check import TokenEndpoint
from service.wrapping import Registrar
from tuning.v1 import credential_service_pb2, credential_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
CREDENTIAL_SERVICE = credential_service_pb2.DESCRIPTOR.services_by_name["CredentialService"]
_SOURCES = {
    Origin.REDIS: credential_service_pb2.TenantCredential.Source.REDIS,
    Origin.FILE: credential_service_pb2.TenantCredential.Source.FILE,
}


class CredentialServicer(credential_service_pb2_grpc.CredentialServiceServicer):
    """Implements tuning.v1.CredentialService."""

    def __init__(self, admin: CredentialsApi) -> None:
        self._admin = admin

    @mapped_errors
    async def SetTenantCredential(
        self, request: credential_service_pb2.SetTenantCredentialRequest, context: Context
    ) -> credential_service_pb2.TenantCredential:
        info = await self._admin.set(
            request.tenant, request.authorized_user_json, actor=current_tenant()
        )
        return credential_to_proto(info)

    @mapped_errors
    async def GetTenantCredential(
        self, request: credential_service_pb2.GetTenantCredentialRequest, context: Context
    ) -> credential_service_pb2.TenantCredential:
        return credential_to_proto(await self._admin.get(request.tenant))

    @mapped_errors
    async def DeleteTenantCredential(
        self, request: credential_service_pb2.DeleteTenantCredentialRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._admin.delete(request.tenant, actor=current_tenant())
        return empty_pb2.Empty()

    @mapped_errors
    async def ResealCredentials(
        self, request: credential_service_pb2.ResealCredentialsRequest, context: Context
    ) -> credential_service_pb2.ResealCredentialsResponse:
        report = await self._admin.reseal(actor=current_tenant())
        return credential_service_pb2.ResealCredentialsResponse(
            key_id=report.key_id,
            resealed_count=report.resealed,
            current_count=report.current,
            failed_tenants=list(report.failed),
        )


def credential_to_proto(info: CredentialInfo) -> credential_service_pb2.TenantCredential:
    message = credential_service_pb2.TenantCredential(
        tenant=info.tenant,
        client_id=info.client_id,
        scopes=list(info.scopes),
        quota_project=info.quota_project,
        source=_SOURCES[info.origin],
        key_id=info.key_id,
    )
    _set_time(message.last_refresh_time, info.last_refresh_time)
    _set_time(message.update_time, info.update_time)
    return message


def _set_time(field: timestamp_pb2.Timestamp, seconds: float | None) -> None:
    if seconds is not None:
        field.FromNanoseconds(int(seconds * 1e9))


def add_credential_service(
    server: Registrar,
    *,
    settings: Settings,
    redis: Redis,
    tenants: TenantDirectory,
    keys: KeyRingSource | None,
    token_http: httpx.Client,
    clock: Clock,
) -> str:
    """Register the CredentialService on `server`; its full name (for reflection)."""
    admin = CredentialsApi(
        CredentialStore(redis, Keys(settings.redis_key_prefix)),
        tenants,
        keys,
        TokenEndpoint(token_http, settings.token_uri),
        clock,
    )
    credential_service_pb2_grpc.add_CredentialServiceServicer_to_server(
        CredentialServicer(admin), server.stand_in
    )
    return str(CREDENTIAL_SERVICE.full_name)
