"""Method tables of the facade's services, from the message types Google publishes.

Google's `google-ai-generativelanguage` package defines the request and response
messages (proto-plus types over protobuf descriptors) but registers no service
descriptors, so each service's methods are listed here: full name, request and response
message classes, and whether the answer streams. `generic_handler` turns a table and a
servicer (an object with one coroutine per method name) into the handler the server is
given; it is wrapped like every other service (service.process's `rpc_wrappers`:
message limits, authentication, observation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from service.wrapping import handler_kind


@dataclass(frozen=True)
class Method:
    """One RPC of a facade service: its name and its raw protobuf message classes."""

    name: str
    request: type[Message]
    response: type[Message]
    server_streaming: bool = False


def generic_handler(
    service: str, methods: Sequence[Method], servicer: object
) -> grpc.GenericRpcHandler:
    """Handlers for `methods` of `service` (a full name), each `servicer`'s attribute of
    the method's name; an answer already serialized (bytes) is sent as it is."""
    handlers: dict[str, Any] = {}
    for method in methods:
        kind = handler_kind(False, method.server_streaming)
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=method.request.FromString,
            response_serializer=_serializer(method.response),
        )
    return grpc.method_handlers_generic_handler(service, handlers)


def _serializer(response: type[Message]) -> Any:
    def serialize(message: Any) -> bytes:
        if isinstance(message, bytes):
            return message
        if not isinstance(message, response):
            # A proto-plus message (google-ai-generativelanguage's types): its protobuf.
            message = type(message).pb(message)
        serialized: bytes = message.SerializeToString()
        return serialized

    return serialize
