"""The AuditService servicer.

PLACEHOLDER: every method answers UNIMPLEMENTED until it is written.
"""

from __future__ import annotations

from typing import Any

import grpc

from service.wrapping import service_handler
from tuning.v1 import audit_service_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = pb.DESCRIPTOR.services_by_name["AuditService"]


class AuditServicer:
    """Implements tuning.v1.AuditService (placeholder)."""

    def __getattr__(self, name: str) -> Any:
        if name not in SERVICE.methods_by_name:
            raise AttributeError(name)

        async def unimplemented(request: Any, context: Context) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not served yet")

        return unimplemented


def generic_handler(servicer: AuditServicer) -> grpc.GenericRpcHandler:
    """The AuditService's method handlers (service.wrapping.service_handler)."""
    return service_handler(SERVICE, servicer)
