"""The AliasService servicer: read the request, call AliasesApi, map the answer."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2, timestamp_pb2

from core.redis.aliases import Alias, AliasRevision
from service.aliases_api import AliasesApi
from service.auth import current_tenant
from service.errors import mapped_errors
from service.retirement import set_retirement
from service.wrapping import service_handler
from tuning.v1 import alias_service_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = pb.DESCRIPTOR.services_by_name["AliasService"]


class AliasServicer:
    """Implements tuning.v1.AliasService. The caller's principal is its tenant (service.auth
    knows no finer identity), so that is who each revision records."""

    def __init__(self, api: AliasesApi) -> None:
        self._api = api

    async def _answer(self, tenant: str, alias: Alias) -> pb.Alias:
        """The alias as answered: with its targets' base-model retirement as of now."""
        message = alias_to_proto(alias)
        set_retirement(message, await self._api.retirement(tenant, alias))
        return message

    @mapped_errors
    async def CreateAlias(self, request: pb.CreateAliasRequest, context: Context) -> pb.Alias:
        tenant = current_tenant()
        return await self._answer(tenant, await self._api.create(tenant, tenant, request))

    @mapped_errors
    async def GetAlias(self, request: pb.GetAliasRequest, context: Context) -> pb.Alias:
        tenant = current_tenant()
        return await self._answer(tenant, await self._api.get(tenant, request.name))

    @mapped_errors
    async def ListAliases(
        self, request: pb.ListAliasesRequest, context: Context
    ) -> pb.ListAliasesResponse:
        tenant = current_tenant()
        aliases, token = await self._api.list_aliases(
            tenant, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListAliasesResponse(
            aliases=[await self._answer(tenant, a) for a in aliases], next_page_token=token
        )

    @mapped_errors
    async def UpdateAlias(self, request: pb.UpdateAliasRequest, context: Context) -> pb.Alias:
        tenant = current_tenant()
        return await self._answer(tenant, await self._api.update(tenant, tenant, request))

    @mapped_errors
    async def RollbackAlias(self, request: pb.RollbackAliasRequest, context: Context) -> pb.Alias:
        tenant = current_tenant()
        return await self._answer(tenant, await self._api.rollback(tenant, tenant, request))

    @mapped_errors
    async def DeleteAlias(
        self, request: pb.DeleteAliasRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._api.delete(current_tenant(), request.name)
        return empty_pb2.Empty()

    @mapped_errors
    async def ListAliasRevisions(
        self, request: pb.ListAliasRevisionsRequest, context: Context
    ) -> pb.ListAliasRevisionsResponse:
        revisions, token = await self._api.revisions(
            current_tenant(),
            request.name,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListAliasRevisionsResponse(
            revisions=[revision_to_proto(r) for r in revisions], next_page_token=token
        )


def alias_to_proto(alias: Alias) -> pb.Alias:
    return pb.Alias(
        name=alias.name,
        target=alias.route.target,
        canary_target=alias.route.canary_target,
        canary_percent=alias.route.canary_percent,
        revision=alias.revision,
        create_time=_timestamp(alias.create_time),
        update_time=_timestamp(alias.update_time),
        update_principal=alias.update_principal,
    )


def revision_to_proto(revision: AliasRevision) -> pb.AliasRevision:
    return pb.AliasRevision(
        revision=revision.revision,
        target=revision.route.target,
        canary_target=revision.route.canary_target,
        canary_percent=revision.route.canary_percent,
        update_time=_timestamp(revision.update_time),
        update_principal=revision.update_principal,
        reason=revision.change,
    )


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(round(seconds * 1000))
    return stamp


def generic_handler(servicer: AliasServicer) -> grpc.GenericRpcHandler:
    """The AliasService's method handlers (service.wrapping.service_handler)."""
    return service_handler(SERVICE, servicer)
