"""Caller authentication: `authorization: Bearer <token>` metadata names the tenant.

The interceptor wraps every TuningService method so the check runs in the handler's
own task, and the tenant travels to the handler in a context variable. Health and
reflection stay open, as probes and tools expect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc_status import rpc_status

from core.errors import Unauthenticated
from core.tenants import Tenant, TenantDirectory
from service.errors import to_status

_tenant: ContextVar[str] = ContextVar("tenant")
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]

PROTECTED_PREFIX = "/tuning.v1."


def current_tenant() -> str:
    """The authenticated tenant of the RPC being handled."""
    return _tenant.get()


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses RPCs without a known tenant token with UNAUTHENTICATED."""

    def __init__(self, directory: TenantDirectory) -> None:
        self._directory = directory

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(PROTECTED_PREFIX):
            return handler
        tenant = self._authenticate(details.invocation_metadata or ())
        return _with_tenant(handler, tenant)

    def _authenticate(self, metadata: Any) -> Tenant | None:
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer" and token:
                    return self._directory.authenticate(token.strip())
        return None


def _with_tenant(handler: Handler, tenant: Tenant | None) -> Handler:
    streaming = handler.request_streaming
    behavior: Any = handler.stream_unary if streaming else handler.unary_unary

    async def authenticated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if tenant is None:
            error = Unauthenticated(
                "missing or unknown bearer token: send 'authorization: Bearer <tenant token>'",
                reason="TOKEN_INVALID",
            )
            await context.abort_with_status(rpc_status.to_status(to_status(error)))
        assert tenant is not None
        reset = _tenant.set(tenant.id)
        try:
            return await behavior(request, context)
        finally:
            _tenant.reset(reset)

    kind = (
        grpc.stream_unary_rpc_method_handler if streaming else grpc.unary_unary_rpc_method_handler
    )
    return kind(
        authenticated,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
