"""Per-RPC observability: a request id in every log line, and RPC counts and latency.

The request id comes from the caller's `x-request-id` metadata, or is made here, and
is sent back (in the trailing metadata; for uploads, at once in the initial metadata) so
a caller can quote it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from core import logs
from core.metrics import Metrics
from service.handlers import behavior_of, rewrapped

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]

REQUEST_ID_KEY = "x-request-id"


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Outermost interceptor: sees every RPC, including the refused ones."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None or handler.response_streaming:
            return handler  # reflection's streaming calls are not counted
        request_id = _request_id(details.invocation_metadata or ())
        return _observed(handler, str(details.method), request_id, self._metrics)


def _request_id(metadata: Any) -> str:
    for key, value in metadata:
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex


def _observed(handler: Handler, method: str, request_id: str, metrics: Metrics) -> Handler:
    behavior: Any = behavior_of(handler)
    streaming = handler.request_streaming

    async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        reset = logs.request_id.set(request_id)
        started = time.perf_counter()
        if streaming:
            # A long upload learns its request id at once (and so can a test, that the
            # call is in flight); unary calls get it in the trailers, at no extra cost.
            await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
        else:
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
        try:
            return await behavior(request, context)
        finally:
            code = context.code() or grpc.StatusCode.OK
            name = code.name if isinstance(code, grpc.StatusCode) else str(code)
            metrics.rpcs.labels(method, name).inc()
            metrics.rpc_latency.labels(method).observe(time.perf_counter() - started)
            logs.request_id.reset(reset)

    return rewrapped(handler, observed)
