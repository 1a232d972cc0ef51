"""Typed errors of an upstream tuning service, grouped by what the worker does about them."""

from __future__ import annotations

from google.rpc import code_pb2

from core.errors import JobError, TuningError
from core.security.authorized_user import TUNING_SCOPE

UPSTREAM_DOMAIN = "generativelanguage.googleapis.com"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
SCOPE_INSUFFICIENT = "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


class UpstreamError(TuningError):
    """An upstream call failed. `http_status`, `status` and `reason` come from its envelope."""

    code = code_pb2.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 0,
        status: str = "",
        reason: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason or status or "UPSTREAM_ERROR")
        self.http_status = http_status
        self.status = status
        self.retry_after_s = retry_after_s
        if status in code_pb2.Code.keys():  # noqa: SIM118 (an enum wrapper, not a dict)
            self.code = code_pb2.Code.Value(status)

    def job_error(self) -> JobError:
        """The error to keep on the job, for callers to read."""
        metadata = {"upstream_status": self.status, "http_status": str(self.http_status)}
        return JobError(self.code, f"upstream: {self.message}", self.reason, metadata)


class UpstreamRetryable(UpstreamError):
    """429, 5xx, timeouts, connection failures: retry after a delay."""


class UpstreamRejected(UpstreamError):
    """400 and 403 and other 4xx: retrying the same call cannot help; the job fails."""


class UpstreamScopeInsufficient(UpstreamRejected):
    """403 ACCESS_TOKEN_SCOPE_INSUFFICIENT: the credential was granted without the tuning scope.

    The tuning guide's own troubleshooting case; nothing but a new grant fixes it, so the
    message says exactly that, naming the scope.
    """

    def job_error(self) -> JobError:
        message = (
            f"the tenant's OAuth credential lacks the scope {TUNING_SCOPE} that tuning "
            f"requires (upstream: {self.http_status} {self.status} {self.reason}: "
            f"{self.message}). The tenant's OAuth credential must be granted again with that "
            "scope (gcloud auth application-default login --client-id-file=CLIENT.json "
            f"--scopes={CLOUD_PLATFORM_SCOPE},{TUNING_SCOPE}) and installed on the platform."
        )
        metadata = {"missing_scope": TUNING_SCOPE, "upstream_status": self.status}
        return JobError(self.code, message, self.reason, metadata)


class UpstreamNotFound(UpstreamRejected):
    """404: the resource does not exist (or no longer does)."""


class UpstreamAlreadyExists(UpstreamError):
    """409: a resource with the requested id exists."""


class UpstreamUnauthenticated(UpstreamError):
    """401: the access token was refused."""


class CredentialError(UpstreamRejected):
    """The tenant's OAuth credential is missing or was refused; a person must fix it."""

    code = code_pb2.FAILED_PRECONDITION

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, reason=reason)
        self.code = code_pb2.FAILED_PRECONDITION

    def job_error(self) -> JobError:
        return JobError(self.code, self.message, self.reason)
