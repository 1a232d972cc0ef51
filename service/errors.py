"""The one place project errors become gRPC statuses with google.rpc details."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from core.errors import (
    ERROR_DOMAIN,
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
    Retryable,
    TuningError,
)
from core.runtime import logs
from service.request_parsing import Malformed

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def to_status(exc: TuningError) -> status_pb2.Status:
    """google.rpc.Status for `exc`: ErrorInfo always; BadRequest, RetryInfo, QuotaFailure as fit."""
    status = status_pb2.Status(code=exc.code, message=exc.message)
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=ERROR_DOMAIN)
    status.details.add().Pack(info)
    if isinstance(exc, InvalidArgument) and exc.violations:
        bad = error_details_pb2.BadRequest()
        for v in exc.violations:
            bad.field_violations.add(field=v.field, description=v.description)
        status.details.add().Pack(bad)
    if isinstance(exc, Retryable):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(exc.retry_after_s * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    if isinstance(exc, ResourceExhausted):
        quota = error_details_pb2.QuotaFailure()
        quota.violations.add(subject=exc.subject or exc.reason, description=exc.message)
        status.details.add().Pack(quota)
    return status


def internal_status() -> status_pb2.Status:
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; it has been logged")


def refuse_malformed(request: Any) -> None:
    if isinstance(request, Malformed):
        raise InvalidArgument(
            f"the request is not a valid {request.method} message ({request.error})",
            [FieldViolation("request", "not a valid protobuf message for this method")],
        )


async def well_formed(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream whose every message is checked like a unary request."""
    async for request in requests:
        refuse_malformed(request)
        yield request


def mapped_errors(handler: Handler) -> Handler:
    """Decorate a servicer method: project errors abort with their status, others as INTERNAL.

    A caller never sees a stack trace or a raw library error.
    """

    @wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            refuse_malformed(request)
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
