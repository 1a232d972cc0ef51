"""Errors as Google's HTTP APIs answer them: `{"error": {code, message, status, details}}`.

The body is the error's google.rpc.Status (core.errors.to_status, the one place an error
becomes a status) in proto3 JSON, its details each with an `@type` (ErrorInfo always;
BadRequest, RetryInfo, QuotaFailure where they fit), `code` the HTTP status that the
gRPC code maps to as Google's own HTTP APIs map it (google/rpc/code.proto), and `status`
the gRPC code's name. google-genai raises `errors.ClientError` (4xx) or `ServerError`
(5xx) with these fields. An unexpected error is INTERNAL with nothing of the error in it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2

from service.errors import REQUEST_ID_KEY

HTTP_STATUS: dict[int, int] = {
    code_pb2.CANCELLED: 499,
    code_pb2.UNKNOWN: 500,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 400,
    code_pb2.ABORTED: 409,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.INTERNAL: 500,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DATA_LOSS: 500,
}
"""Google's HTTP status for each gRPC code (google/rpc/code.proto's mapping)."""


def envelope(status: status_pb2.Status) -> dict[str, Any]:
    """The JSON error body for `status`."""
    http_status = HTTP_STATUS.get(status.code, 500)
    details = [json_format.MessageToDict(detail) for detail in status.details]
    error = {
        "code": http_status,
        "message": status.message,
        "status": code_pb2.Code.Name(status.code),
        "details": details,
    }
    return {"error": error}


def error_response(status: status_pb2.Status, request_id: str) -> web.Response:
    """The HTTP answer for `status`, naming the request it failed (a RequestInfo detail and
    an `x-request-id` header, as the gRPC API's trailers do); a RetryInfo's delay is also
    a `Retry-After` header."""
    status.details.add().Pack(error_details_pb2.RequestInfo(request_id=request_id))
    headers = {REQUEST_ID_KEY: request_id}
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delay_s = info.retry_delay.ToTimedelta().total_seconds()
            headers["Retry-After"] = str(max(1, math.ceil(delay_s)))
    return web.Response(
        status=HTTP_STATUS.get(status.code, 500),
        text=json.dumps(envelope(status)),
        content_type="application/json",
        headers=headers,
    )
