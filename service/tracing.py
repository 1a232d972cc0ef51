"""One server span per RPC, a child of the caller's W3C `traceparent` when it sent one.

Applied to each method handler once, at registration, outermost (service.process
`rpc_wrappers`), and only when tracing is on (core.runtime.tracing): off, the handlers
are served as they are, and a GetTuningJob pays nothing for it. Inside the span run the
observer (so its log lines carry the trace id), authentication, the method, and the
Redis scripts and upstream requests it makes, each a span of its own. A create keeps the
span's traceparent in its job (`Job.traceparent`), for the worker's visits to join.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from core.runtime import tracing
from service.wrapping import behavior_of, rewrapped, stream_answers

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


GRPC_OWN = "/grpc."
"""gRPC's own services (health, reflection): not traced."""


class RpcTracer:
    """Wraps each method of the platform's services (the Gemini API facade's too) in a
    server span named as OpenTelemetry's RPC conventions name it
    (`tuning.v1.TuningService/GetTuningJob`)."""

    def wrap(self, method: str, handler: Handler) -> Handler:
        if method.startswith(GRPC_OWN):
            return handler  # probes' health checks and reflection would be noise
        behavior: Any = behavior_of(handler)
        spans = _Spans(method)

        if handler.response_streaming:

            async def traced_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                span = spans.start(context)
                with _current(span):
                    try:
                        async for answer in stream_answers(behavior(request, context)):
                            yield answer
                    finally:
                        spans.end(span, context)

            return rewrapped(handler, traced_stream)

        async def traced(request: Any, context: Context) -> Any:
            span = spans.start(context)
            with _current(span):
                try:
                    return await behavior(request, context)
                finally:
                    spans.end(span, context)

        return rewrapped(handler, traced)


def _current(span: Span | None) -> AbstractContextManager[Any]:
    """`span` current in the block and ended after it; its status is the call's code
    (`_Spans.end`), not the exception an abort raises."""
    if span is None:
        return contextlib.nullcontext()
    return trace.use_span(
        span, end_on_exit=True, record_exception=False, set_status_on_exception=False
    )


class _Spans:
    """One method's spans: started from the caller's metadata, ended with the status."""

    def __init__(self, method: str) -> None:
        self._name = method.removeprefix("/")
        service, _, name = self._name.partition("/")
        self._attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

    def start(self, context: Context) -> Span | None:
        parent = tracing.parent_from(context.invocation_metadata())
        return tracing.start_span(
            self._name, kind=SpanKind.SERVER, parent=parent, attributes=self._attributes
        )

    def end(self, span: Span | None, context: Context) -> None:
        """Record the call's status code (an aborted call's too) on its span."""
        if span is None:
            return
        code = context.code()
        value = code.value[0] if isinstance(code, grpc.StatusCode) else int(code or 0)
        span.set_attribute("rpc.grpc.status_code", value)
        if value != 0:
            name = code.name if isinstance(code, grpc.StatusCode) else str(value)
            tracing.failed(span, name)
