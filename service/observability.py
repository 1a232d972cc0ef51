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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf import descriptor_pool

from core.runtime import logs
from core.runtime.metrics import Metrics
from service import receive_budget
from service.auth import principal_if_any
from service.errors import REQUEST_ID_KEY
from service.wrapping import behavior_of, rewrapped

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]

Ended = Callable[[str, "grpc.StatusCode | None", int], None]
"""(the call's principal, "" if none; its status code, None for OK; the request bytes it
was charged, service.receive_budget): told as each call ends."""


class RpcObserver:
    """Outermost wrapper: sees every unary and upload RPC, including the refused ones."""

    def __init__(self, metrics: Metrics, *, ended: Ended | None = None) -> None:
        self._metrics = metrics
        self._ids = RequestIds()
        self._ended = ended

    def wrap(self, method: str, handler: Handler) -> Handler:
        if handler.response_streaming:
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
    streaming = _client_streaming(method, handler)
    latency = metrics.rpc_latency.labels(method)
    counts: dict[str, Any] = {}

    def count(code: grpc.StatusCode | None) -> None:
        name = (code or grpc.StatusCode.OK).name if not isinstance(code, int) else str(code)
        counter = counts.get(name)
        if counter is None:
            counter = counts[name] = metrics.rpcs.labels(method, name)
        counter.inc()

    async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        request_id = ids.of(context.invocation_metadata())
        reset = logs.request_id.set(request_id)
        started = time.perf_counter()
        counting = receive_budget.count_call_bytes()
        if streaming:
            # A long upload learns its request id at once (and so can a test, that the
            # call is in flight). A failed call carries it in its error (service.errors).
            await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
        try:
            return await behavior(request, context)
        finally:
            code = context.code()
            count(code)
            if ended is not None:
                ended(principal_if_any(), code, receive_budget.received_bytes())
            receive_budget.stop_counting(counting)
            latency.observe(time.perf_counter() - started)
            logs.request_id.reset(reset)

    return rewrapped(handler, observed)


def _client_streaming(method: str, handler: Handler) -> bool:
    """Whether the method streams its requests, as its service declares: the wrappers
    inside serve every method as request-streaming (service.wrapping.read_when_admitted),
    so the handler's own kind no longer says. A method no descriptor names goes by it."""
    try:
        found = descriptor_pool.Default().FindMethodByName(method[1:].replace("/", "."))
    except KeyError:
        return bool(handler.request_streaming)
    return bool(found.client_streaming)
