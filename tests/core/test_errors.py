"""The error catalogue: every reason documented, to_status's details, no reason written inline."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from core import errors
from core.errors import (
    ERROR_DOMAIN,
    CreateQuotaSpent,
    FieldViolation,
    InvalidArgument,
    JobError,
    NotFound,
    Reason,
    TuningError,
    Unavailable,
    UpstreamError,
    UpstreamRejected,
    UpstreamRetryable,
    to_status,
)

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "errors.md"


def test_docs_table_is_the_one_the_enum_generates() -> None:
    assert errors.markdown_table() in DOCS.read_text(), "run `python scripts/docs_tables.py`"


def test_docs_draw_the_tree_of_the_module_docstring() -> None:
    assert errors.__doc__ is not None
    tree = [line for line in errors.__doc__.splitlines() if line.startswith("    ")]
    assert tree, "the module docstring draws no tree"
    assert textwrap.dedent("\n".join(tree)) in DOCS.read_text()


def test_every_error_class_of_the_module_is_in_the_tree() -> None:
    assert errors.__doc__ is not None
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, TuningError)
    }
    drawn = {line.split()[1] for line in errors.__doc__.splitlines() if line.startswith("    ")}
    assert classes == drawn


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_has_a_code_a_meaning_and_an_action(reason: Reason) -> None:
    assert reason.code in code_pb2.Code.values()
    assert reason.code != code_pb2.OK
    for text in (reason.meaning, reason.action, reason.code_text):
        assert text.strip() and "\n" not in text and "|" not in text
    assert reason.value == reason.name  # what callers match on is the member's own name


def test_an_errors_code_is_its_reasons_unless_the_upstream_named_one() -> None:
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, TuningError):
            assert isinstance(value.reason, Reason), value.__name__
    assert errors.FailedPrecondition("x").code == code_pb2.FAILED_PRECONDITION
    assert errors.NotFound("x", reason=Reason.TENANT_NOT_FOUND).code == code_pb2.NOT_FOUND
    assert errors.Unavailable("x").code == code_pb2.UNAVAILABLE
    assert errors.UpstreamNotFound("gone").code == code_pb2.NOT_FOUND
    named = errors.UpstreamRejected("bad", http_status=400, status="INVALID_ARGUMENT")
    assert (named.code, named.reason) == (code_pb2.INVALID_ARGUMENT, Reason.UPSTREAM_REJECTED)
    assert isinstance(named, UpstreamError)


def _details(status: status_pb2.Status) -> dict[str, Message]:
    kinds: list[type[Message]] = [
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
        error_details_pb2.QuotaFailure,
    ]
    found: dict[str, Message] = {}
    for detail in status.details:
        for kind in kinds:
            message = kind()
            if detail.Unpack(message):
                found[kind.__name__] = message
    assert len(found) == len(status.details), "a detail of an unexpected type"
    return found


def _info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    info = _details(status)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.domain == ERROR_DOMAIN
    return info


def test_a_plain_error_carries_error_info_only() -> None:
    status = to_status(NotFound("tuningJobs/x not found"))
    assert (status.code, status.message) == (code_pb2.NOT_FOUND, "tuningJobs/x not found")
    assert list(_details(status)) == ["ErrorInfo"]
    assert _info(status).reason == "NOT_FOUND"


def test_an_invalid_argument_names_its_fields_in_bad_request() -> None:
    error = InvalidArgument("bad", [FieldViolation("tuning_job.base_model", "required")])
    status = to_status(error)
    details = _details(status)
    assert list(details) == ["ErrorInfo", "BadRequest"]
    bad = details["BadRequest"]
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("tuning_job.base_model", "required")
    ]


def test_a_spent_create_quota_carries_retry_info_and_quota_failure() -> None:
    status = to_status(CreateQuotaSpent("search", per_minute=6, retry_after_s=9.5))
    details = _details(status)
    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    assert _info(status).reason == "CREATE_RATE_EXCEEDED"
    retry = details["RetryInfo"]
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToNanoseconds() == 9_500_000_000
    quota = details["QuotaFailure"]
    assert isinstance(quota, error_details_pb2.QuotaFailure)
    assert quota.violations[0].subject == "tenant:search"
    assert "6 tuning jobs per minute" in status.message


def test_an_unavailable_store_carries_retry_info_but_no_quota_failure() -> None:
    status = to_status(Unavailable("the job store is unreachable", retry_after_s=1.0))
    assert list(_details(status)) == ["ErrorInfo", "RetryInfo"]
    assert _info(status).reason == "STORE_UNAVAILABLE"


def test_a_jobs_error_goes_through_the_same_function() -> None:
    error = JobError.of(Reason.DEAD_LETTERED, "gave up", metadata={"k": "v"})
    status = to_status(error)
    assert (status.code, status.message) == (code_pb2.UNAVAILABLE, "gave up")
    assert list(_details(status)) == ["ErrorInfo"]  # a job's error is final: no RetryInfo
    info = _info(status)
    assert (info.reason, dict(info.metadata)) == ("DEAD_LETTERED", {"k": "v"})


def test_an_upstream_rejection_keeps_googles_words_in_the_metadata() -> None:
    rejected = UpstreamRejected(
        "bad data", http_status=400, status="INVALID_ARGUMENT", upstream_reason="BAD_DATASET"
    )
    status = to_status(rejected.job_error())
    assert (status.code, status.message) == (code_pb2.INVALID_ARGUMENT, "upstream: bad data")
    info = _info(status)
    assert info.reason == "UPSTREAM_REJECTED"
    assert dict(info.metadata) == {
        "upstream_reason": "BAD_DATASET",
        "upstream_status": "INVALID_ARGUMENT",
        "http_status": "400",
    }


def test_an_upstream_retryable_is_a_retryable() -> None:
    error = UpstreamRetryable("slow down", http_status=429, retry_after_s=26)
    assert isinstance(error, errors.Retryable)
    assert error.retry_after_s == 26
    assert UpstreamRetryable("timed out").retry_after_s == 0  # no delay asked: backoff decides


# No reason is written as a string anywhere but in the enum.

SOURCES = [ROOT / package for package in ("core", "service", "worker")]
REASON_VALUES = {reason.value for reason in Reason}


def _python_files() -> Iterator[Path]:
    for source in SOURCES:
        yield from sorted(source.rglob("*.py"))


def _is_text(node: ast.AST) -> bool:
    """A string literal, or an expression with one in it (`reason or "UPSTREAM_ERROR"`)."""
    return any(
        isinstance(n, ast.JoinedStr) or (isinstance(n, ast.Constant) and isinstance(n.value, str))
        for n in ast.walk(node)
    )


def _stray_reasons(tree: ast.AST) -> Iterator[ast.AST]:
    """`reason="..."`, `reason = "..."`, `x.reason == "..."`, and a reason's value passed
    to any call (but as `status=`: the upstream's google.rpc status names)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "reason" and _is_text(node.value):
            yield node
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = any(getattr(t, "id", getattr(t, "attr", None)) == "reason" for t in targets)
            if named and _is_text(node.value):
                yield node
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(getattr(s, "attr", None) == "reason" for s in sides) and any(
                _is_text(s) for s in sides
            ):
                yield node
        elif isinstance(node, ast.Call):
            values = [*node.args, *(k.value for k in node.keywords if k.arg != "status")]
            for value in values:
                if isinstance(value, ast.Constant) and value.value in REASON_VALUES:
                    yield value


def test_no_reason_is_written_inline() -> None:
    stray = [
        f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        for path in _python_files()
        for node in _stray_reasons(ast.parse(path.read_text(), str(path)))
    ]
    assert not stray, f"use a core.errors.Reason member: {stray}"


def test_the_scan_finds_what_it_looks_for() -> None:
    for source in (
        'raise NotFound("x", reason="NO_SUCH_THING")',
        'raise NotFound("x", reason=f"{role}_REQUIRED")',
        'class E(NotFound):\n    reason = "GONE"',
        'error.reason = "GONE"',
        'if exc.reason == "QUOTA": pass',
        'JobError(5, "gone", "DELETED_UPSTREAM")',
        'super().__init__(message, reason=reason or status or "UPSTREAM_ERROR")',
    ):
        assert list(_stray_reasons(ast.parse(source))), source
    assert not list(_stray_reasons(ast.parse('UpstreamRetryable("x", status="UNAVAILABLE")')))
