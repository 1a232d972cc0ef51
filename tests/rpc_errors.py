"""Reading google.rpc details out of a failed gRPC call."""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

M = TypeVar("M")


def status_of(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "the error carries no google.rpc.Status"
    return status


def detail(error: grpc.aio.AioRpcError, kind: type[M]) -> M:
    """The first detail of type `kind`; fails the test if there is none."""
    for any_detail in status_of(error).details:
        message: Any = kind()
        if any_detail.Unpack(message):
            return message  # type: ignore[no-any-return]
    raise AssertionError(f"no {kind.__name__} in the error details")


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    bad = detail(error, error_details_pb2.BadRequest)
    return {v.field: v.description for v in bad.field_violations}


def reason(error: grpc.aio.AioRpcError) -> str:
    return str(detail(error, error_details_pb2.ErrorInfo).reason)
