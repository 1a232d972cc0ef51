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

# The Cloud Storage JSON API's ``errors[].reason`` for an HTTP code, when none is given.
JSON_API_REASON_BY_HTTP_CODE: Mapping[int, str] = {
    400: "invalid",
    401: "required",
    403: "insufficientPermissions",
    404: "notFound",
    409: "conflict",
    412: "conditionNotMet",
    416: "requestedRangeNotSatisfiable",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
    504: "deadlineExceeded",
}


class ApiError(Exception):
    """An error answered as a ``google.rpc.Status`` envelope (or the JSON API's, by route).

    Attributes:
        code: the HTTP status code.
        message: the human-readable message.
        status: the canonical status name (derived from ``code`` unless given).
        details: ``google.rpc`` detail messages, each with its ``@type``.
        headers: extra response headers (e.g. ``www-authenticate``).
        reason: the Cloud Storage JSON API ``errors[].reason`` (derived from ``code`` unless
            given); only routes with ``Route.json_api_errors`` answer it.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        details: tuple[JsonObject, ...] = (),
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_HTTP_CODE.get(code, "UNKNOWN")
        self.details = details
        self.headers: Mapping[str, str] = headers or {}
        self.reason = reason or JSON_API_REASON_BY_HTTP_CODE.get(code, "backendError")

    def envelope(self, service: str = SERVICE, method: str = "") -> JsonObject:
        """The JSON body: details are omitted when there are none.

        Errors are raised without knowing which API answers them; the middleware passes the
        route's ``service`` (and RPC ``method``). For a service other than the Gemini API's
        (Vertex AI), ErrorInfo metadata and quota metrics name it instead, and an error
        without an ErrorInfo gets one in that service's domain, its reason the status name.
        """
        error: JsonObject = {"code": self.code, "message": self.message, "status": self.status}
        details = list(self.details)
        if service != SERVICE:
            details = [_for_service(detail, service) for detail in details]
            if not any(detail["@type"] == _ERROR_INFO for detail in details):
                details.append(_service_error_info(self.status, service, method))
        if details:
            error["details"] = details
        return {"error": error}

    def json_api_envelope(self) -> JsonObject:
        """The older JSON API body Cloud Storage answers: ``{code, message, errors: [...]}``."""
        item = {"message": self.message, "domain": "global", "reason": self.reason}
        return {"error": {"code": self.code, "message": self.message, "errors": [item]}}


_ERROR_INFO = TYPE_PREFIX + "google.rpc.ErrorInfo"
_QUOTA_FAILURE = TYPE_PREFIX + "google.rpc.QuotaFailure"


def _for_service(detail: JsonObject, service: str) -> JsonObject:
    """``detail`` naming ``service`` where it names the Gemini API's service."""
    if detail["@type"] == _ERROR_INFO and "service" in detail.get("metadata", {}):
        return detail | {"metadata": detail["metadata"] | {"service": service}}
    if detail["@type"] == _QUOTA_FAILURE:
        violations = [
            v | {"quotaMetric": str(v.get("quotaMetric", "")).replace(SERVICE, service)}
            for v in detail.get("violations", [])
        ]
        return detail | {"violations": violations}
    return detail


def _service_error_info(status: str, service: str, method: str) -> JsonObject:
    metadata = {"service": service, "method": method} if method else {"service": service}
    return {"@type": _ERROR_INFO, "reason": status, "domain": service, "metadata": metadata}


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
