"""The Gemini API's google.rpc error envelope, translated into the project's upstream errors.

The translation happens here, at the boundary: the HTTP status picks the class (what the
worker does about it: core.errors' `UpstreamError` branch), and the envelope's own
`status`, ErrorInfo `reason` and retry delay are kept on the error, for its ErrorInfo
metadata. The reason callers match on is always ours.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from core.errors import (
    Reason,
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
    upstream_reason = _reason(details)
    kind = _kind(response.status_code, upstream_reason)
    return kind(
        str(error.get("message") or response.reason_phrase or "no message"),
        http_status=response.status_code,
        status=str(error.get("status") or ""),
        upstream_reason=upstream_reason,
        retry_after_s=_retry_after_s(details, response.headers.get("retry-after")),
        # A 429 is told apart from other transient failures (its own retry metric).
        reason=Reason.UPSTREAM_RESOURCE_EXHAUSTED if response.status_code == 429 else None,
    )


def _kind(http_status: int, upstream_reason: str) -> type[UpstreamError]:
    if http_status == 401:
        return UpstreamUnauthenticated
    if http_status == 404:
        return UpstreamNotFound
    if http_status == 409:
        return UpstreamAlreadyExists
    if http_status in (408, 429) or http_status >= 500:
        return UpstreamRetryable
    # Our reason for it keeps the upstream's name: the tuning guide's own case.
    if upstream_reason == Reason.ACCESS_TOKEN_SCOPE_INSUFFICIENT:
        return UpstreamScopeInsufficient
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
