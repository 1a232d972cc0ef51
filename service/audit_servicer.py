"""The AuditService servicer: read the request, page the trail (service.audit_listing).

Admin-only (service.auth: a service without a role of its own needs `admin`).
"""

from __future__ import annotations

from typing import Any

import grpc

from core.redis.audit import AuditEntry
from service.audit_listing import AuditReader, audit_query
from service.errors import mapped_errors
from service.wrapping import service_handler
from tuning.v1 import audit_service_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = pb.DESCRIPTOR.services_by_name["AuditService"]


class AuditServicer:
    """Implements tuning.v1.AuditService."""

    def __init__(self, reader: AuditReader) -> None:
        self._reader = reader

    @mapped_errors
    async def ListAuditRecords(
        self, request: pb.ListAuditRecordsRequest, context: Context
    ) -> pb.ListAuditRecordsResponse:
        query = audit_query(
            tenant=request.tenant,
            action=request.action,
            resource=request.resource,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        found, token = await self._reader.page(query)
        return pb.ListAuditRecordsResponse(
            records=[record_to_proto(e) for e in found], next_page_token=token
        )


def record_to_proto(entry: AuditEntry) -> pb.AuditRecord:
    record = pb.AuditRecord(
        principal=entry.principal,
        role=entry.role,
        tenant=entry.tenant,
        method=entry.method,
        action=entry.action,
        resource=entry.resource,
        outcome=entry.outcome,
        request_id=entry.request_id,
        detail=entry.detail,
    )
    record.time.FromMilliseconds(entry.time_ms)
    return record


def generic_handler(servicer: AuditServicer) -> grpc.GenericRpcHandler:
    """The AuditService's method handlers (service.wrapping.service_handler)."""
    return service_handler(SERVICE, servicer)
