"""Hostile input: hypothesis throws malformed requests and raw bytes at every RPC.

Whatever arrives, the answer is a deliberate status (never INTERNAL or UNKNOWN), the
server keeps serving, and a refused request stores nothing. Hypothesis generates the
inputs; the calls are then made against the real server, whose event loop the test owns.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import BASE_MODEL, System
from tuning.v1 import dataset_pb2, tuning_job_pb2, tuning_service_pb2


@pytest.fixture
def api_only(api_without_brake: System) -> System:
    """The tests here make hundreds of refused calls on purpose: without the refusal brake."""
    return api_without_brake


ACCEPTABLE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
METHODS = [
    "CreateTuningJob",
    "GetTuningJob",
    "ListTuningJobs",
    "CancelTuningJob",
    "DeleteTuningJob",
    "GetDataset",
]

names = st.one_of(
    st.text(max_size=40),
    st.builds(lambda s: "tuningJobs/" + s, st.text(max_size=30)),
    st.builds(lambda s: "datasets/" + s, st.text(max_size=30)),
)
numbers = st.floats(allow_nan=True, allow_infinity=True)
texts = st.text(max_size=60)
examples = st.lists(
    st.builds(tuning_job_pb2.TrainingExample, text_input=texts, output=texts), max_size=30
)
hyperparameters = st.builds(
    tuning_job_pb2.Hyperparameters,
    epoch_count=st.integers(-(2**31), 2**31 - 1),
    batch_size=st.integers(-(2**31), 2**31 - 1),
    learning_rate=numbers,
)
jobs = st.builds(
    tuning_job_pb2.TuningJob,
    display_name=texts,
    base_model=st.one_of(st.just(BASE_MODEL), texts),
    hyperparameters=hyperparameters,
    training_examples=examples,
    labels=st.dictionaries(texts, texts, max_size=4),
    dataset=st.one_of(st.just(""), names),
)
creates = st.builds(
    tuning_service_pb2.CreateTuningJobRequest,
    request_id=st.one_of(st.just(""), texts),
    tuning_job=jobs,
    validate_only=st.booleans(),
)
lists = st.builds(
    tuning_service_pb2.ListTuningJobsRequest,
    page_size=st.integers(-(2**31), 2**31 - 1),
    page_token=texts,
    filter=st.one_of(texts, st.sampled_from(["state = RUNNING", 'labels.a = "b"', "state ="])),
)
uploads = st.lists(
    st.one_of(
        st.builds(
            lambda fmt, field: tuning_service_pb2.UploadDatasetRequest(
                dataset=dataset_pb2.Dataset(format=fmt, input_field=field)
            ),
            st.integers(0, 5),
            texts,
        ),
        st.builds(
            lambda b: tuning_service_pb2.UploadDatasetRequest(chunk=b), st.binary(max_size=300)
        ),
    ),
    max_size=6,
)
raw_calls = st.tuples(st.sampled_from([*METHODS, "UploadDataset"]), st.binary(max_size=200))


def generated(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """About `count` inputs drawn by hypothesis (edge cases first), to replay on the server."""
    drawn: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn


async def expect_handled(call: Any) -> bool:
    """True if the call succeeded; fails the test on an undeliberate status."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        assert error.code() in ACCEPTABLE, f"{error.code()}: {error.details()}"
        return False
    return True


async def upload(system: System, parts: list[Any]) -> Any:
    """Stream `parts` as a careful client does: stop writing once the server has answered."""
    call = system.stub.UploadDataset(metadata=system.auth())
    for part in parts:
        if call.done():
            break
        try:
            await call.write(part)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            break  # The server ended the call; its status says why.
    if not call.done():
        with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError):
            await call.done_writing()
    return await call


async def job_count(system: System) -> int:
    return len([k for k in await system.keys() if b":job:" in k])


async def test_malformed_creates_are_refused_cleanly_and_store_nothing(api_only: System) -> None:
    for request in generated(creates, 150):
        before = await job_count(api_only)
        ok = await expect_handled(api_only.stub.CreateTuningJob(request, metadata=api_only.auth()))
        grew = await job_count(api_only) - before
        assert grew == (1 if ok and not request.validate_only else 0) or (ok and grew == 0)


async def test_malformed_reads_lists_cancels_and_deletes_are_refused_cleanly(
    api_only: System,
) -> None:
    auth = api_only.auth()
    for name in generated(names, 100):
        calls: list[tuple[Any, Any]] = [
            (api_only.stub.GetTuningJob, tuning_service_pb2.GetTuningJobRequest(name=name)),
            (api_only.stub.CancelTuningJob, tuning_service_pb2.CancelTuningJobRequest(name=name)),
            (api_only.stub.DeleteTuningJob, tuning_service_pb2.DeleteTuningJobRequest(name=name)),
            (api_only.stub.GetDataset, tuning_service_pb2.GetDatasetRequest(name=name)),
        ]
        for rpc, request in calls:
            assert not await expect_handled(rpc(request, metadata=auth))
    for request in generated(lists, 100):
        await expect_handled(api_only.stub.ListTuningJobs(request, metadata=auth))


async def test_malformed_uploads_are_refused_cleanly_and_store_nothing(api_only: System) -> None:
    for parts in generated(uploads, 100):
        ok = await expect_handled(upload(api_only, parts))
        stored = [k for k in await api_only.keys() if b":dataset:" in k]
        assert ok or not stored


async def test_bytes_that_are_not_protobuf_get_invalid_argument_not_internal(
    api_only: System,
) -> None:
    for method, raw in generated(raw_calls, 150):
        path = f"/tuning.v1.TuningService/{method}"
        call: Any
        if method == "UploadDataset":
            call = api_only.channel.stream_unary(path, request_serializer=bytes)(
                iter([raw]), metadata=api_only.auth()
            )
        else:
            call = api_only.channel.unary_unary(path, request_serializer=bytes)(
                raw, metadata=api_only.auth()
            )
        await expect_handled(call)
    assert await job_count(api_only) == 0


async def test_an_oversized_message_gets_a_clear_status_not_a_dropped_connection(
    api_only: System,
) -> None:
    huge = tuning_service_pb2.CreateTuningJobRequest(
        tuning_job=tuning_job_pb2.TuningJob(description="x" * (17 * 1024 * 1024))
    )
    try:
        await api_only.stub.CreateTuningJob(huge, metadata=api_only.auth())
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than" in (error.details() or "")
    else:
        raise AssertionError("a 17 MiB message was accepted")
    assert (await api_only.list_jobs()).tuning_jobs == []  # the server still serves
