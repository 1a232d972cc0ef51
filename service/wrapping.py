"""Wrapping each method handler once, when its service is registered.

Cross-cutting behavior (request ids and metrics, authentication) is applied around a
method's behavior as the service is added to the server, not per call: a gRPC server
interceptor would run a coroutine and build a fresh handler for every RPC, which on the
status-read hot path cost a measurable share of the CPU (see bench/README.md).
`Registrar` stands in for the server while services are added and forwards what they
register, wrapped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import grpc

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]

Wrap = Callable[[str, "Handler"], "Handler"]
"""(full method name, handler) -> the handler to serve instead."""


def behavior_of(handler: Handler) -> Any:
    """The coroutine function behind a unary-unary or stream-unary handler."""
    return handler.stream_unary if handler.request_streaming else handler.unary_unary


def rewrapped(handler: Handler, behavior: Any) -> Handler:
    """A handler of the same kind and (de)serializers that runs `behavior` instead."""
    kind = (
        grpc.stream_unary_rpc_method_handler
        if handler.request_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return kind(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


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
