"""Per-RPC observability: a request id in every log line, and RPC counts and latency.

Applied to each method handler once, at registration (service.wrapping).

The request id comes from the caller's `x-request-id` metadata, or is made here. Every
error names it (a `google.rpc.RequestInfo` detail and an `x-request-id` trailer), and an
upload gets it at once in the initial metadata, so a caller can quote it. A successful
unary call does not repeat it: a caller that wants to find one in the logs sends its own
`x-request-id`: a trailer on every answer is work for both ends on the hottest path
(GetTuningJob), for an id callers need when something failed.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf import descriptor_pool

from core.runtime import logs
from core.runtime.metrics import Metrics
from service import receive_budget
from service.auth import principal_if_any
from service.errors import REQUEST_ID_KEY
from service.wrapping import behavior_of, rewrapped, stream_answers

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]

Ended = Callable[[str, "grpc.StatusCode | None", int], None]
"""(the call's principal, "" if none; its status code, None for OK; the request bytes it
was charged, service.receive_budget): told as each call ends."""


OWN_SERVICES = "/tuning."
"""The methods of the platform's own services: all observed, streams of answers too."""


class RpcObserver:
    """Outermost wrapper: sees every RPC of the platform's services (unary, uploads and
    streamed answers such as StreamGenerateContent), including the refused ones."""

    def __init__(self, metrics: Metrics, *, ended: Ended | None = None) -> None:
        self._metrics = metrics
        self._ids = RequestIds()
        self._ended = ended

    def wrap(self, method: str, handler: Handler) -> Handler:
        if handler.response_streaming and not method.startswith(OWN_SERVICES):
            return handler  # health's Watch and reflection are not counted
        return _observed(handler, method, self._ids, self._metrics, self._ended)


class RequestIds:
    """Request ids unique across replicas: a random per-process part and a counter."""

    def __init__(self) -> None:
        self._process = uuid.uuid4().hex[:12]
        self._next = itertools.count(1)

    def of(self, metadata: Any) -> str:
        """The caller's `x-request-id`, if it sent a usable one, or a new id."""
        for key, value in metadata or ():
            if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128:
                return value
        return f"{self._process}{next(self._next):08x}"


def _observed(
    handler: Handler, method: str, ids: RequestIds, metrics: Metrics, ended: Ended | None
) -> Handler:
    behavior: Any = behavior_of(handler)
    call = _Bookkeeping(method, ids, metrics, ended, uploads=_client_streaming(method, handler))

    if handler.response_streaming:

        async def observed_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            began = await call.begin(context)
            try:
                async for answer in stream_answers(behavior(request, context)):
                    yield answer
            finally:
                call.end(context, began)

        return rewrapped(handler, observed_stream)

    async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        began = await call.begin(context)
        try:
            return await behavior(request, context)
        finally:
            call.end(context, began)

    return rewrapped(handler, observed)


class _Bookkeeping:
    """One method's request ids, counts, latency and receive budget, call by call."""

    def __init__(
        self, method: str, ids: RequestIds, metrics: Metrics, ended: Ended | None, uploads: bool
    ) -> None:
        self._ids, self._metrics, self._ended = ids, metrics, ended
        self._method, self._uploads = method, uploads
        self._latency = metrics.rpc_latency.labels(method)
        self._counts: dict[grpc.StatusCode | None, Any] = {}

    async def begin(self, context: grpc.aio.ServicerContext[Any, Any]) -> _Began:
        request_id = self._ids.of(context.invocation_metadata())
        began = (
            logs.request_id.set(request_id),
            time.perf_counter(),
            receive_budget.count_call_bytes(),
        )
        if self._uploads:
            # A long upload learns its request id at once (and so can a test, that the
            # call is in flight). A failed call carries it in its error (service.errors).
            await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
        return began

    def end(self, context: grpc.aio.ServicerContext[Any, Any], began: _Began) -> None:
        reset, started, counting = began
        code = context.code()
        self._count(code)
        if self._ended is not None:
            self._ended(principal_if_any(), code, receive_budget.received_bytes())
        self._latency.observe(time.perf_counter() - started)
        # A stream of answers may be closed from another context than it began in.
        try:
            receive_budget.stop_counting(counting)
            logs.request_id.reset(reset)
        except ValueError:
            pass

    def _count(self, code: grpc.StatusCode | None) -> None:
        counter = self._counts.get(code)
        if counter is None:
            name = (code or grpc.StatusCode.OK).name if not isinstance(code, int) else str(code)
            counter = self._counts[code] = self._metrics.rpcs.labels(self._method, name)
        counter.inc()


_Began: TypeAlias = tuple[Any, float, Any]
"""A call's request-id reset token, start (perf_counter) and receive-budget token: a
tuple, as the cheapest record of three things, made on every call."""


def _client_streaming(method: str, handler: Handler) -> bool:
    """Whether the method streams its requests, as its service declares: the wrappers
    inside serve every method as request-streaming (service.wrapping.read_when_admitted),
    so the handler's own kind no longer says. A method no descriptor names goes by it."""
    try:
        found = descriptor_pool.Default().FindMethodByName(method[1:].replace("/", "."))
    except KeyError:
        return bool(handler.request_streaming)
    return bool(found.client_streaming)
