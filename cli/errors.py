"""Exit codes, and every way a command fails, as lines a person reads (never a traceback).

    CliError                 exit 1 unless it says otherwise; `lines()` is what is printed
    ├── ConfigError          exit 2: a flag, variable or config file that cannot be used
    ├── InputError           exit 1: a file named on the command line that cannot be used
    ├── Unreachable          exit 1: no API answered at the endpoint (refused, TLS, DNS)
    ├── RpcFailure           exit 1: the API refused the call: its code, message, details
    └── JobEnded             exit 3 or 4: a watched job ended FAILED or CANCELLED

click's own usage errors (an unknown option, a missing argument) exit 2 as click has
them. `__main__.main` is the one place that catches these and prints them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

MAX_ECHO_CHARS = 2000
"""Longest server message printed whole; longer ones are cut (a message is untrusted text)."""


class ExitCode(IntEnum):
    """What `tunectl` exits with: the shell's conventions, and two codes of its own."""

    OK = 0
    FAILURE = 1
    """The call failed: the API refused it, or could not be reached."""
    USAGE = 2
    """The command line or the configuration is wrong (click's own code for usage)."""
    JOB_FAILED = 3
    """`jobs watch`: the job ended FAILED."""
    JOB_CANCELLED = 4
    """`jobs watch`: the job ended CANCELLED."""


class CliError(Exception):
    """The root: a failure to report to the user and exit with `exit_code`."""

    exit_code: ExitCode = ExitCode.FAILURE

    def lines(self) -> list[str]:
        return [f"error: {self}"]

    def to_dict(self) -> dict[str, Any]:
        """For `--output json`: the same facts as `lines()`, for a script."""
        return {"error": {"message": str(self)}}


class ConfigError(CliError):
    exit_code = ExitCode.USAGE


class InputError(CliError):
    """A local file (a dataset, examples) that is missing, too large or malformed."""


class Unreachable(CliError):
    """Nothing answered: the endpoint is wrong, the API is down, or TLS does not match."""

    def __init__(self, endpoint: str, detail: str) -> None:
        super().__init__(f"cannot reach the API at {endpoint}: {_cut(detail)}")
        self.endpoint = endpoint


class JobEnded(CliError):
    """A watched job ended without success; its state picks the exit code."""

    def __init__(self, name: str, state: str, message: str) -> None:
        suffix = f": {_cut(message)}" if message else ""
        super().__init__(f"{name} ended {state}{suffix}")
        self.exit_code = ExitCode.JOB_CANCELLED if state == "CANCELLED" else ExitCode.JOB_FAILED
        self.state = state

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "state": self.state}}


class RpcFailure(CliError):
    """A status from the API, with its google.rpc details unpacked."""

    def __init__(self, code: grpc.StatusCode, message: str, status: status_pb2.Status | None):
        super().__init__(_cut(message))
        self.code = code
        self.details = _details(status)

    def lines(self) -> list[str]:
        lines = [f"error: {self.code.name}: {self}"]
        for violation in self.details.get("field_violations", []):
            lines.append(f"  {violation['field']}: {_cut(violation['description'])}")
        for violation in self.details.get("quota_violations", []):
            lines.append(f"  quota {violation['subject']}: {_cut(violation['description'])}")
        if "reason" in self.details:
            lines.append(f"  reason: {self.details['reason']}")
        if "retry_after_s" in self.details:
            lines.append(f"  retry after {self.details['retry_after_s']:g} s")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code.name, "message": str(self), **self.details}}


def from_rpc_error(error: grpc.RpcError, endpoint: str) -> CliError:
    """The CliError a failed call means. An UNAVAILABLE with no google.rpc.Status came
    from the channel, not from the API (which details every error): nothing answered."""
    call: Any = error
    code: grpc.StatusCode = call.code()
    message: str = call.details() or ""
    status = _status_of(call)
    if status is None and code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unreachable(endpoint, message or code.name)
    return RpcFailure(code, message, status)


def retry_after_s(error: grpc.RpcError) -> float | None:
    """The RetryInfo delay of a failed call, if it has one."""
    status = _status_of(error)
    delay = _details(status).get("retry_after_s")
    return float(delay) if delay is not None else None


def reason_of(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call, or empty."""
    return str(_details(_status_of(error)).get("reason", ""))


def _status_of(call: Any) -> status_pb2.Status | None:
    try:
        return rpc_status.from_call(call)
    except ValueError:  # trailers that disagree with the call's code: ignore the details
        return None


def _details(status: status_pb2.Status | None) -> dict[str, Any]:
    """The details a person acts on, by kind; unknown kinds are skipped."""
    found: dict[str, Any] = {}
    for packed in status.details if status is not None else ():
        for kind, unpack in _UNPACKERS.items():
            message = kind()
            if packed.Unpack(message):
                unpack(message, found)
    return found


def _bad_request(message: Any, found: dict[str, Any]) -> None:
    found["field_violations"] = [
        {"field": v.field, "description": v.description} for v in message.field_violations
    ]


def _error_info(message: Any, found: dict[str, Any]) -> None:
    found["reason"] = message.reason
    if message.metadata:
        found["metadata"] = dict(message.metadata)


def _retry_info(message: Any, found: dict[str, Any]) -> None:
    found["retry_after_s"] = message.retry_delay.ToNanoseconds() / 1e9


def _quota_failure(message: Any, found: dict[str, Any]) -> None:
    found["quota_violations"] = [
        {"subject": v.subject, "description": v.description} for v in message.violations
    ]


_UNPACKERS: dict[type[Any], Any] = {
    error_details_pb2.BadRequest: _bad_request,
    error_details_pb2.ErrorInfo: _error_info,
    error_details_pb2.RetryInfo: _retry_info,
    error_details_pb2.QuotaFailure: _quota_failure,
}


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "..."
