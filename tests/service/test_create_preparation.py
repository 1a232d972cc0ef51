"""A create's heavy work off the event loop (service.create_preparation).

A create of 100,000 labels costs the parser tens of milliseconds: the API reads only its
head on the event loop (request_id, validate_only, for the quotas) and parses, validates
and encodes a large one in its pool of checking processes, which hands back a refusal
with its field violations, or the job ready to store.
"""

from __future__ import annotations

import time

import grpc
import pytest

from core.domain.job import decode_examples
from core.errors import InvalidArgument
from core.runtime.settings import Settings
from service.create_preparation import prepare_create, prepare_here, read_head, unpacked
from service.dataset_checker import DatasetChecker
from tests.conftest import SystemFactory
from tests.harness import examples, job_spec
from tests.rpc_errors import violations
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

pytestmark = pytest.mark.timeout(60)


def labelled(count: int) -> tuning_service_pb2.CreateTuningJobRequest:
    spec = job_spec()
    spec.labels.update({f"k{n}": "v" for n in range(count)})
    return tuning_service_pb2.CreateTuningJobRequest(request_id="r-1", tuning_job=spec)


def test_the_head_is_read_without_parsing_the_job() -> None:
    request = labelled(100_000)
    request.validate_only = True
    raw = request.SerializeToString()
    started = time.perf_counter()
    head = read_head(raw)
    took_s = time.perf_counter() - started
    assert (head.request_id, head.validate_only, head.raw) == ("r-1", True, raw)
    # The job's bytes are not looked at: a job that is not a message at all reads the same.
    garbage = (
        b"\x12\x04\xff\xff\xff\xff"
        + tuning_service_pb2.CreateTuningJobRequest(request_id="r-2").SerializeToString()
    )
    assert read_head(garbage).request_id == "r-2"
    started = time.perf_counter()
    tuning_service_pb2.CreateTuningJobRequest.FromString(raw)
    assert took_s < (time.perf_counter() - started) / 10  # a tenth of a full parse, at most


def test_a_prepared_create_carries_what_the_store_needs() -> None:
    request = tuning_service_pb2.CreateTuningJobRequest(
        request_id="r-1", tuning_job=job_spec(training_examples=examples(30))
    )
    prepared = unpacked(prepare_create(request.SerializeToString(), Settings()))
    assert prepared.example_count == 30
    assert len(prepared.request.tuning_job.training_examples) == 0  # not carried twice
    assert prepared.request.tuning_job.base_model == request.tuning_job.base_model
    pairs = decode_examples(prepared.examples)
    assert [(p.text_input, p.output) for p in pairs] == [
        (e.text_input, e.output) for e in request.tuning_job.training_examples
    ]


def test_a_create_prepared_on_the_event_loop_is_the_one_a_child_would_hand_back() -> None:
    request = tuning_service_pb2.CreateTuningJobRequest(
        request_id="r-1", tuning_job=job_spec(training_examples=examples(30))
    )
    request.tuning_job.labels.update({"team": "ml", "cost-centre": "x1"})
    raw = request.SerializeToString()
    here, there = unpacked(prepare_here(raw, Settings())), unpacked(prepare_create(raw, Settings()))
    assert here == there
    with pytest.raises(InvalidArgument) as refused:
        unpacked(prepare_here(labelled(1_000).SerializeToString(), Settings()))
    assert "tuning_job.labels" in str(refused.value)


async def test_a_refusal_crosses_from_the_child_with_its_violations() -> None:
    checker = DatasetChecker(processes=1, per_tenant=1)
    try:
        raw = labelled(1_000).SerializeToString()
        outcome = await checker.run("team-a", prepare_create, raw, Settings())
        with pytest.raises(Exception) as refused:
            unpacked(outcome)
        assert "tuning_job.labels" in str(refused.value)
        bad = await checker.run("team-a", prepare_create, b"\x12\x04\xff\xff\xff\xff", Settings())
        with pytest.raises(Exception, match="not a valid CreateTuningJob message"):
            unpacked(bad)
    finally:
        checker.close()


async def test_large_creates_through_the_pool(make_system: SystemFactory) -> None:
    async with make_system(validation_processes=1) as system:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await system.stub.CreateTuningJob(labelled(100_000), metadata=system.auth())
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "tuning_job.labels" in violations(refused.value)
        text = "x" * 30_000
        rows = [tuning_job_pb2.TrainingExample(text_input=text, output="y") for _ in range(40)]
        job = await system.create(training_examples=rows)  # 1.2 MB: prepared in the child
        assert job.name.startswith("tuningJobs/")
        assert (await system.get(job.name)).name == job.name
