"""Wrapping each method handler once, when its service is registered.

Cross-cutting behavior (request ids and metrics, authentication, each method's message
limit and the parsing of its requests) is applied around a method's behavior as the
service is added to the server, not per call: a gRPC server interceptor would run a
coroutine and build a fresh handler for every RPC, which on the status-read hot path
cost a measurable share of the CPU (see bench/README.md).
`Registrar` stands in for the server while services are added and forwards what they
register, wrapped.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, cast

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from core.errors import FieldViolation, InvalidArgument, TuningError, to_status
from service.errors import abort

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

Wrap = Callable[[str, "Handler"], "Handler"]
"""(full method name, handler) -> the handler to serve instead."""
Prepare = Callable[[Any, "Context"], Any]
"""(request, context) -> the request to hand on; raises a TuningError to refuse the call."""
Hold = Callable[[], Awaitable[None] | None]
"""() -> what to wait out before the call goes on, or None to go on at once."""
SlowRefusal = Callable[[TuningError], Awaitable[None] | None]
"""(the refusal) -> what to wait out before it is answered, or None to answer at once."""

_KINDS: dict[tuple[bool, bool], Callable[..., Handler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
_SAME: Any = object()
END_OF_STREAM_WAIT_S = 1.0
"""How long a unary call's end of stream is waited for, after its message."""
END_OF_STREAM_READ_ABOVE_BYTES = 16 * 1024
"""A unary call's end of stream is read after a message larger than this (one HTTP/2
frame at gRPC's default frame size; see `_end_of`)."""


def service_handler(
    service: ServiceDescriptor, servicer: object, parsers: Mapping[str, Any] | None = None
) -> grpc.GenericRpcHandler:
    """Method handlers for every method in `service`'s descriptor, of whichever kind, each
    the servicer's attribute of the method's name.

    Each names its request parser as its deserializer (`parsers` by method name, else the
    request message's own); the server is given them wrapped (service.process), and the
    wrapper calls the parser only once the caller is authenticated and the bytes are
    within the method's limit (service.message_limits). An answer already serialized
    (bytes: a cached status) is sent as it is.
    """
    handlers = {}
    for method in service.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        kind = handler_kind(method.client_streaming, method.server_streaming)
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=(parsers or {}).get(method.name, request_type.FromString),
            response_serializer=_serialized_or(response_type.SerializeToString),
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _serialized_or(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def serializer(message: Any) -> bytes:
        return message if isinstance(message, bytes) else serialize(message)

    return serializer


def handler_kind(request_streaming: bool, response_streaming: bool) -> Callable[..., Handler]:
    """The `grpc.*_rpc_method_handler` function for a method of that kind."""
    return _KINDS[request_streaming, response_streaming]


def behavior_of(handler: Handler) -> Any:
    """The function behind a handler, whichever of the four kinds it is."""
    if handler.request_streaming:
        return handler.stream_stream if handler.response_streaming else handler.stream_unary
    return handler.unary_stream if handler.response_streaming else handler.unary_unary


def rewrapped(handler: Handler, behavior: Any, *, request_deserializer: Any = _SAME) -> Handler:
    """A handler of the same kind and serializer that runs `behavior` instead (and takes
    its requests with `request_deserializer`, if given: None hands on the raw bytes)."""
    if request_deserializer is _SAME:
        request_deserializer = handler.request_deserializer
    kind = handler_kind(bool(handler.request_streaming), bool(handler.response_streaming))
    return kind(
        behavior,
        request_deserializer=request_deserializer,
        response_serializer=handler.response_serializer,
    )


def preceded(
    handler: Handler,
    prepare: Prepare,
    *,
    raw_requests: bool = False,
    hold: Hold | None = None,
    slow_refusal: SlowRefusal | None = None,
) -> Handler:
    """A handler of `handler`'s kind that first runs `prepare`, aborting the RPC with the
    status of the TuningError it raises, and gives the behavior what it returns.

    `raw_requests`: the server hands on each request's bytes, as received, for `prepare`
    to parse. `hold()`, after `prepare` let the call in, and `slow_refusal(error)`, before
    it is refused, may return an awaitable to wait out first. Works for all four kinds of
    method, so no method escapes a wrapper by its kind (a response-streaming one either
    writes with `context.write` or yields).
    """
    behavior = behavior_of(handler)
    deserializer = None if raw_requests else _SAME

    if not handler.response_streaming or inspect.iscoroutinefunction(behavior):

        async def answered(request: Any, context: Context) -> Any:
            # Inline, not a shared coroutine: this runs on every call of every method.
            try:
                request = prepare(request, context)
            except TuningError as exc:
                await _refuse(context, exc, slow_refusal)
            if hold is not None and (waiting := hold()) is not None:
                await waiting
            return await behavior(request, context)

        return rewrapped(handler, answered, request_deserializer=deserializer)

    async def streamed(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            request = prepare(request, context)
        except TuningError as exc:
            await _refuse(context, exc, slow_refusal)
        if hold is not None and (waiting := hold()) is not None:
            await waiting
        async for answer in stream_answers(behavior(request, context)):
            yield answer

    return rewrapped(handler, streamed, request_deserializer=deserializer)


def read_when_admitted(
    handler: Handler,
    parse: Callable[[bytes], Any],
    *,
    admit: Callable[[], Awaitable[None] | None] | None = None,
) -> Handler:
    """A unary-request `handler` served as a request-streaming one, so that no byte of its
    request is read before the wrappers outside it have admitted the call on its metadata.

    gRPC reads a unary request whole before it runs any handler code; a request-streaming
    handler reads each message only when asked. So the wrappers outside this one (the
    authenticator) refuse a caller who is no one while the request is still on the wire,
    and gRPC drops the rest of it unread. This handler then reads the one message, as
    bytes, and hands `parse(raw)` (which may refuse it with a TuningError) to the behavior;
    `admit()`, called before the read, may refuse the call with a TuningError, or return
    an awaitable that holds it back first.
    The wire is the same: a client calls the method as unary and cannot tell.
    """
    behavior = behavior_of(handler)

    async def request_of(requests: AsyncIterator[bytes], context: Context) -> Any:
        try:
            waiting = None if admit is None else admit()
            if waiting is not None:
                await waiting
            raw = await context.read()  # cheaper than iterating `requests`
            if raw is grpc.aio.EOF:
                raise _not_one("the call ended without its request message")
            if len(raw) > END_OF_STREAM_READ_ABOVE_BYTES:
                await _end_of(context)
            return parse(raw)
        except TuningError as exc:
            await _refuse(context, exc)

    kind = handler_kind(True, bool(handler.response_streaming))
    if not handler.response_streaming or inspect.iscoroutinefunction(behavior):

        async def answered(requests: AsyncIterator[bytes], context: Context) -> Any:
            return await behavior(await request_of(requests, context), context)

        return kind(
            answered, request_deserializer=None, response_serializer=handler.response_serializer
        )

    async def streamed(requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
        request = await request_of(requests, context)
        async for answer in stream_answers(behavior(request, context)):
            yield answer

    return kind(
        streamed, request_deserializer=None, response_serializer=handler.response_serializer
    )


async def _end_of(context: Context) -> None:
    """Read a unary call's end of stream, which a client sends with its message.

    A request-streaming call refused after reading a large message but not its end keeps
    its received buffers (about a quarter of a 1 MB request, per call, measured with
    grpcio 1.85), and a tenant sending large refused requests would grow the replica
    without bound; calls of small messages do not, and the extra read would cost the
    status read a third of its throughput, so it is made only after a large message. A
    client that sends its message but never ends its side gets END_OF_STREAM_WAIT_S, and
    its call goes on. A second message is refused.
    """
    try:
        async with asyncio.timeout(END_OF_STREAM_WAIT_S):
            extra = await context.read()
    except TimeoutError:
        return
    if extra is not grpc.aio.EOF:
        raise _not_one("a second request message on a unary method")


def _not_one(message: str) -> InvalidArgument:
    return InvalidArgument(message, [FieldViolation("request", "exactly one request message")])


async def _refuse(
    context: Context, error: TuningError, slow: SlowRefusal | None = None
) -> NoReturn:
    if slow is not None and (waiting := slow(error)) is not None:
        await waiting
    await abort(context, to_status(error))
    raise error  # abort raises; this keeps the flow explicit (and mypy sure of it)


async def stream_answers(answers: Any) -> AsyncIterator[Any]:
    """What a response-streaming behavior yields, whether it is async or not."""
    if hasattr(answers, "__aiter__"):
        async for answer in answers:
            yield answer
    else:
        for answer in answers:
            yield answer


def chained(*wraps: Wrap) -> Wrap:
    """Apply `wraps` in order: the first ends up innermost."""

    def wrap(method: str, handler: Handler) -> Handler:
        for each in wraps:
            handler = each(method, handler)
        return handler

    return wrap


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are wrapped on first use, then reused."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrap: Wrap) -> None:
        self._inner = inner
        self._wrap = wrap
        self._done: dict[str, tuple[Handler, Handler]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = str(handler_call_details.method)
        known = self._done.get(method)
        if known is None or known[0] is not handler:
            known = (handler, self._wrap(method, handler))
            self._done[method] = known
        return known[1]


class Registrar:
    """Takes a service's registration in place of `server`, wrapping every handler."""

    def __init__(self, server: grpc.aio.Server, wrap: Wrap) -> None:
        self._server = server
        self._wrap = wrap

    @property
    def stand_in(self) -> grpc.aio.Server:
        """This, typed as the server: generated `add_*_to_server` functions call only the
        two registration methods below."""
        return cast("grpc.aio.Server", self)

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers([_WrappedGeneric(h, self._wrap) for h in handlers])

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Handler]) -> None:
        wrapped = {name: self._wrap(f"/{service}/{name}", h) for name, h in handlers.items()}
        self._server.add_registered_method_handlers(service, wrapped)
