"""The project's errors. Each knows its google.rpc code; `service.errors` maps them to gRPC.

Grouped by how the caller recovers: fix the request (InvalidArgument, FailedPrecondition,
AlreadyExists, NotFound), fix the credentials (Unauthenticated, PermissionDenied), or
retry later (ResourceExhausted, Unavailable).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.rpc import code_pb2

ERROR_DOMAIN = "tuning.internal"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: `field` is a path like `tuning_job.training_examples[3].output`."""

    field: str
    description: str


class TuningError(Exception):
    """Root of the project's errors."""

    code: int = code_pb2.INTERNAL
    reason: str = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(TuningError):
    code = code_pb2.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


class NotFound(TuningError):
    code = code_pb2.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(TuningError):
    code = code_pb2.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(TuningError):
    code = code_pb2.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Unauthenticated(TuningError):
    code = code_pb2.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(TuningError):
    code = code_pb2.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Retryable(TuningError):
    """The caller may retry the same request after `retry_after_s`."""

    retry_after_s: float = 1.0

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s


class ResourceExhausted(Retryable):
    code = code_pb2.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"
    subject = ""
    """What ran out, for QuotaFailure (e.g. `tenant:search`)."""


class Unavailable(Retryable):
    code = code_pb2.UNAVAILABLE
    reason = "STORE_UNAVAILABLE"


class Conflict(TuningError):
    """A compare-and-set lost a race; internal, retried by the store's caller."""

    code = code_pb2.ABORTED
    reason = "CONFLICT"


class LeaseLost(TuningError):
    """A worker's lease on a job was taken over; its writes are refused (fencing)."""

    code = code_pb2.ABORTED
    reason = "LEASE_LOST"


@dataclass(frozen=True)
class JobError:
    """The error kept on a failed or cancelled job, shown to callers as google.rpc.Status."""

    code: int
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
