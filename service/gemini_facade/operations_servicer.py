"""google.longrunning.Operations on the platform: the facade's create operations.

PLACEHOLDER: every method answers UNIMPLEMENTED until it is written.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from service.gemini_facade.methods import Method

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = "google.longrunning.Operations"
METHODS = (
    Method("GetOperation", operations_pb2.GetOperationRequest, operations_pb2.Operation),
    Method(
        "ListOperations",
        operations_pb2.ListOperationsRequest,
        operations_pb2.ListOperationsResponse,
    ),
    Method("CancelOperation", operations_pb2.CancelOperationRequest, empty_pb2.Empty),
)


class OperationsFacade:
    """Implements the Operations the facade's CreateTunedModel returns (placeholder)."""

    def __getattr__(self, name: str) -> Any:
        if name not in {m.name for m in METHODS}:
            raise AttributeError(name)

        async def unimplemented(request: Any, context: Context) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not served yet")

        return unimplemented
