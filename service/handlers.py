"""Rewrapping a gRPC method handler around a new behavior, for the interceptors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]


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
