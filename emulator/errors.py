"""The Google API error model: ``{"error": {code, message, status, details}}``.

Every failure a handler can report is an :class:`ApiError`; one middleware turns it into the
JSON envelope (``emulator.middleware``). The helpers below build the common cases with the
messages the real service uses where they are known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.protojson import duration

JsonObject = dict[str, Any]

SERVICE = "generativelanguage.googleapis.com"
TYPE_PREFIX = "type.googleapis.com/"

# Canonical gRPC status names for the HTTP codes Google maps them to.
STATUS_BY_HTTP_CODE: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class ApiError(Exception):
    """An error answered as a ``google.rpc.Status`` envelope.

    Attributes:
        code: the HTTP status code.
        message: the human-readable message.
        status: the canonical status name (derived from ``code`` unless given).
        details: ``google.rpc`` detail messages, each with its ``@type``.
        headers: extra response headers (e.g. ``www-authenticate``).
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        details: tuple[JsonObject, ...] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_HTTP_CODE.get(code, "UNKNOWN")
        self.details = details
        self.headers: Mapping[str, str] = headers or {}

    def envelope(self) -> JsonObject:
        """The JSON body: details are omitted when there are none."""
        error: JsonObject = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = list(self.details)
        return {"error": error}


def error_info(reason: str, metadata: Mapping[str, str]) -> JsonObject:
    """A ``google.rpc.ErrorInfo`` detail in the googleapis.com domain."""
    return {
        "@type": TYPE_PREFIX + "google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": dict(metadata),
    }


def bad_request(field: str, description: str) -> JsonObject:
    """A ``google.rpc.BadRequest`` detail naming one offending field."""
    return {
        "@type": TYPE_PREFIX + "google.rpc.BadRequest",
        "fieldViolations": [{"field": field, "description": description}],
    }


def invalid_argument(message: str, field: str | None = None) -> ApiError:
    """400 INVALID_ARGUMENT, with a BadRequest detail when the field is known."""
    details = (bad_request(field, message),) if field else ()
    return ApiError(400, message, details=details)


def failed_precondition(message: str) -> ApiError:
    """400 FAILED_PRECONDITION (Google answers this status with HTTP 400)."""
    return ApiError(400, message, status="FAILED_PRECONDITION")


def model_not_found(model_name: str) -> ApiError:
    """404 for a tuned model that does not exist (or was deleted)."""
    return ApiError(404, f"Tuned model {model_name} does not exist.")


def base_model_not_found(model_name: str, api_version: str) -> ApiError:
    """404 for a ``models/{model}`` the catalog lacks.

    Modelled on the service's 404 for an unknown model in generateContent, which names the
    API version; the exact text of GetModel's 404 is not documented.
    """
    return ApiError(404, f"{model_name[:200]} is not found for API version {api_version}.")


def operation_not_found(operation_name: str) -> ApiError:
    """404 for an operation that does not exist."""
    return ApiError(404, f"Operation {operation_name} does not exist.")


def model_permission_denied(model_name: str) -> ApiError:
    """403 for a tuned model owned by another OAuth client."""
    return ApiError(403, f"You do not have permission to access tuned model {model_name}")


def model_already_exists(model_name: str) -> ApiError:
    """409 for a duplicate ``tunedModelId``."""
    return ApiError(409, f"Tuned model {model_name} already exists.")


def route_not_found(path: str) -> ApiError:
    """404 for a path (or method on a path) the API does not bind."""
    return ApiError(404, f"Method not found: {path}")


def resource_exhausted(
    message: str, retry_delay_s: float, quota_id: str = "RequestsPerMinutePerProjectPerModel"
) -> ApiError:
    """429 RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo, as the real 429 has."""
    return ApiError(429, message, details=quota_details(retry_delay_s, quota_id))


def quota_details(retry_delay_s: float, quota_id: str) -> tuple[JsonObject, ...]:
    """QuotaFailure (naming ``quota_id``), Help and RetryInfo (``retry_delay_s``)."""
    violation = {
        "quotaMetric": f"{SERVICE}/generate_requests_per_model",
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global"},
    }
    link = {
        "description": "Learn more about Gemini API quotas",
        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
    }
    return (
        {"@type": TYPE_PREFIX + "google.rpc.QuotaFailure", "violations": [violation]},
        {"@type": TYPE_PREFIX + "google.rpc.Help", "links": [link]},
        {"@type": TYPE_PREFIX + "google.rpc.RetryInfo", "retryDelay": duration(retry_delay_s)},
    )
