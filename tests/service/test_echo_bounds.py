"""Errors never echo a caller's input in full (issue 12, item 9).

A name of 10,000 characters used to come back whole in the status message and in the
details, twice: a 20 KB `grpc-message` trailer that default gRPC clients refuse (over
16 KiB), so the caller saw a client-side RESOURCE_EXHAUSTED instead of the real error,
and the server amplified the request. Every echoed value is cut with an ellipsis, and
every text of a status is bounded.
"""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from core.errors import ECHO_MAX_CHARS, MESSAGE_MAX_CHARS, InvalidArgument, echo, to_status
from tests.harness import System
from tests.rpc_errors import detail, status_of
from tuning.v1 import tuning_service_pb2

LONG = "x" * 10_000
TRAILER_BUDGET_BYTES = 4 * 1024


def test_echo_cuts_with_an_ellipsis() -> None:
    assert echo("short") == "'short'"
    cut = echo(LONG)
    assert len(cut) == ECHO_MAX_CHARS and cut.endswith("\u2026")


def test_a_status_bounds_every_text_it_carries() -> None:
    error = InvalidArgument("m" * 50_000)
    status = to_status(error)
    assert len(status.message) == MESSAGE_MAX_CHARS
    assert len(status.SerializeToString()) < 2 * MESSAGE_MAX_CHARS


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.cancel("tuningJobs/" + LONG + "/x"),
        lambda s: s.stub.GetDataset(
            tuning_service_pb2.GetDatasetRequest(name=LONG), metadata=s.auth()
        ),
        lambda s: s.delete(LONG),
    ],
    ids=["cancel", "get-dataset", "delete"],
)
async def test_a_long_name_gets_the_real_error_in_a_small_answer(api_only: System, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(api_only)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    trailers = sum(len(k) + len(v) for k, v in (error.trailing_metadata() or ()))
    assert trailers < TRAILER_BUDGET_BYTES
    assert LONG not in (error.details() or "")
    assert len(status_of(error).SerializeToString()) < TRAILER_BUDGET_BYTES
    detail(error, error_details_pb2.ErrorInfo)
