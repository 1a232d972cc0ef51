"""The google.rpc error envelope of the Gemini API, parsed into typed upstream errors."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from worker.upstream_errors import (
    SCOPE_INSUFFICIENT,
    UpstreamAlreadyExists,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamScopeInsufficient,
    UpstreamUnauthenticated,
)

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def error_from_response(response: httpx.Response) -> UpstreamError:
    """The typed error for a non-2xx answer."""
    error = _envelope(response)
    details = error.get("details") or []
    kind = _kind(response.status_code)
    if kind is UpstreamRejected and _reason(details) == SCOPE_INSUFFICIENT:
        kind = UpstreamScopeInsufficient
    return kind(
        str(error.get("message") or response.reason_phrase or "no message"),
        http_status=response.status_code,
        status=str(error.get("status") or ""),
        reason=_reason(details),
        retry_after_s=_retry_after_s(details, response.headers.get("retry-after")),
    )


def _kind(http_status: int) -> type[UpstreamError]:
    if http_status == 401:
        return UpstreamUnauthenticated
    if http_status == 404:
        return UpstreamNotFound
    if http_status == 409:
        return UpstreamAlreadyExists
    if http_status in (408, 429) or http_status >= 500:
        return UpstreamRetryable
    return UpstreamRejected


def _envelope(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _reason(details: list[Any]) -> str:
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == ERROR_INFO:
            return str(detail.get("reason") or "")
    return ""


def _retry_after_s(details: list[Any], header: str | None) -> float | None:
    """The longer of RetryInfo.retryDelay and a Retry-After header (seconds form)."""
    delays: list[float] = []
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
            delays.append(parse_duration_s(str(detail.get("retryDelay", "0s"))))
    if header:
        with contextlib.suppress(ValueError):  # An HTTP-date form is ignored.
            delays.append(float(header))
    return max(delays) if delays else None


def parse_duration_s(text: str) -> float:
    """A google.protobuf.Duration in JSON form, e.g. "26s" or "1.5s"."""
    try:
        return float(text.removesuffix("s"))
    except ValueError:
        return 0.0
