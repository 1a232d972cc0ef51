"""The gRPC side of errors: an RPC aborted with a project error's google.rpc.Status
(core.errors.to_status builds it), and malformed requests refused."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from core.errors import TuningError, to_status
from core.runtime import logs

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])
StreamHandler = TypeVar("StreamHandler", bound=Callable[..., AsyncGenerator[Any]])


_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code(code: grpc.StatusCode | int | None) -> grpc.StatusCode | None:
    """`code` (a call's, or an error's google.rpc number) as a grpc.StatusCode; None if
    it is none, or a number gRPC does not define."""
    return _BY_NUMBER.get(code) if isinstance(code, int) else code


def internal_status() -> status_pb2.Status:
    """The answer to an unexpected error: INTERNAL, with nothing of the error itself."""
    return to_status(TuningError("internal error; it has been logged"))


def mapped_errors(handler: Handler) -> Handler:
    """Decorate a servicer method: project errors abort with their status, others as INTERNAL.

    A caller never sees a stack trace or a raw library error.
    """

    @wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except TuningError as exc:
            status = to_status(exc)
        except Exception:
            log.exception("unexpected error in %s", handler.__name__)
            status = internal_status()
        await abort(context, status)

    return wrapper  # type: ignore[return-value]


def mapped_stream_errors(handler: StreamHandler) -> StreamHandler:
    """`mapped_errors` for a response-streaming servicer method (an async generator): what
    it yielded has been sent, then the error ends the stream with its status."""

    @wraps(handler)
    async def wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async with contextlib.aclosing(handler(self, request, context)) as answers:
                async for answer in answers:
                    yield answer
        except grpc.aio.AbortError:
            raise
        except TuningError as exc:
            status = to_status(exc)
        except Exception:
            log.exception("unexpected error in %s", handler.__name__)
            status = internal_status()
        else:
            return
        await abort(context, status)

    return wrapper  # type: ignore[return-value]


async def abort(context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> None:
    """End the RPC with `status`, naming the request it failed: a `google.rpc.RequestInfo`
    detail and an `x-request-id` trailer carry the id the logs use (core.runtime.logs)."""
    request_id = logs.request_id.get()
    trailers: tuple[tuple[str, str | bytes], ...] = ()
    if request_id:
        status.details.add().Pack(error_details_pb2.RequestInfo(request_id=request_id))
        trailers = ((REQUEST_ID_KEY, request_id),)
    answer = rpc_status.to_status(status)
    await context.abort(answer.code, answer.details, (*answer.trailing_metadata, *trailers))
