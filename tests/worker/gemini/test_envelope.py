"""The Gemini error envelope translated at the boundary: our class and reason, its words kept."""

from __future__ import annotations

from typing import Any

import orjson

from core.errors import (
    Reason,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamScopeInsufficient,
)
from core.upstream_http import ERROR_INFO, RETRY_INFO, Answer, error_from_response


def answer(http_status: int, status: str, *details: dict[str, Any]) -> Answer:
    error = {"code": http_status, "message": "no", "status": status, "details": list(details)}
    return Answer(http_status, "", {}, orjson.dumps({"error": error}))


def test_a_429_is_retryable_told_apart_by_its_reason_and_keeps_its_delay() -> None:
    error = error_from_response(
        answer(429, "RESOURCE_EXHAUSTED", {"@type": RETRY_INFO, "retryDelay": "26s"})
    )
    assert isinstance(error, UpstreamRetryable)
    assert error.reason == Reason.UPSTREAM_RESOURCE_EXHAUSTED
    assert error.retry_after_s == 26


def test_a_503_is_retryable_as_unavailable() -> None:
    error = error_from_response(answer(503, "UNAVAILABLE"))
    assert isinstance(error, UpstreamRetryable)
    assert error.reason == Reason.UPSTREAM_UNAVAILABLE


def test_a_rejection_has_our_reason_and_googles_in_the_metadata() -> None:
    error = error_from_response(
        answer(400, "INVALID_ARGUMENT", {"@type": ERROR_INFO, "reason": "BAD_DATASET"})
    )
    assert type(error) is UpstreamRejected
    job_error = error.job_error()
    assert job_error.reason == Reason.UPSTREAM_REJECTED
    assert job_error.metadata == {
        "upstream_reason": "BAD_DATASET",
        "upstream_status": "INVALID_ARGUMENT",
        "http_status": "400",
    }


def test_a_403_for_the_missing_scope_keeps_the_guides_reason() -> None:
    scope = {"@type": ERROR_INFO, "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}
    error = error_from_response(answer(403, "PERMISSION_DENIED", scope))
    assert isinstance(error, UpstreamScopeInsufficient)
    assert error.job_error().reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
