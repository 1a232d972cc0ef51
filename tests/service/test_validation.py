"""Bad requests: INVALID_ARGUMENT, field violations naming row and field, nothing stored."""

from __future__ import annotations

import grpc
import pytest

from tests.harness import System, examples, job_spec
from tests.rpc_errors import reason, violations
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

Hyper = tuning_job_pb2.Hyperparameters


async def create_error(system: System, **fields: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await system.create(**fields)  # type: ignore[arg-type]
    return caught.value


async def test_epoch_count_zero_is_refused_and_nothing_is_stored(api_only: System) -> None:
    error = await create_error(api_only, hyperparameters=Hyper(epoch_count=0))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tuning_job.hyperparameters.epoch_count" in violations(error)
    assert reason(error) == "INVALID_ARGUMENT"
    assert await api_only.keys() == []


async def test_both_learning_rates_on_the_wire_are_refused(api_only: System) -> None:
    # A oneof cannot hold both in one message object, but the wire can carry both; the
    # parser would keep the last silently. Concatenated messages merge, as protobuf says.
    first = tuning_service_pb2.CreateTuningJobRequest(
        tuning_job=job_spec(hyperparameters=Hyper(epoch_count=2, learning_rate=0.001))
    )
    second = tuning_service_pb2.CreateTuningJobRequest(
        tuning_job=tuning_job_pb2.TuningJob(hyperparameters=Hyper(learning_rate_multiplier=2.0))
    )
    raw_call = api_only.channel.unary_unary(
        "/tuning.v1.TuningService/CreateTuningJob",
        request_serializer=lambda raw: raw,
        response_deserializer=tuning_job_pb2.TuningJob.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw_call(
            first.SerializeToString() + second.SerializeToString(), metadata=api_only.auth()
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(caught.value)
    assert "at most one" in found["tuning_job.hyperparameters.learning_rate_multiplier"]
    assert await api_only.keys() == []


async def test_each_bad_row_is_named_with_its_field(api_only: System) -> None:
    rows = examples(25)
    rows[3].output = ""
    rows[17].text_input = "x" * 40_001
    error = await create_error(api_only, training_examples=rows)
    found = violations(error)
    assert set(found) == {
        "tuning_job.training_examples[3].output",
        "tuning_job.training_examples[17].text_input",
    }
    assert "40001 characters" in found["tuning_job.training_examples[17].text_input"]
    assert "training_examples[3].output" in (error.details() or "")


async def test_every_problem_is_reported_at_once(api_only: System) -> None:
    error = await create_error(
        api_only,
        base_model="models/not-tunable",
        display_name="x" * 41,
        hyperparameters=Hyper(batch_size=-1, learning_rate=-0.5),
        training_examples=examples(5),
        labels={"Team": "ok"},
    )
    assert set(violations(error)) == {
        "tuning_job.base_model",
        "tuning_job.display_name",
        "tuning_job.hyperparameters.batch_size",
        "tuning_job.hyperparameters.learning_rate",
        "tuning_job.training_examples",
        "tuning_job.labels['Team']",
    }


async def test_missing_job_is_refused(api_only: System) -> None:
    request = tuning_service_pb2.CreateTuningJobRequest(request_id="r-1")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.stub.CreateTuningJob(request, metadata=api_only.auth())
    assert violations(caught.value) == {"tuning_job": "required"}


async def test_validate_only_answers_the_job_and_stores_nothing(api_only: System) -> None:
    request = tuning_service_pb2.CreateTuningJobRequest(
        request_id="r-1", tuning_job=job_spec(), validate_only=True
    )
    job = await api_only.stub.CreateTuningJob(request, metadata=api_only.auth())
    assert job.name.startswith("tuningJobs/")
    assert job.state == tuning_job_pb2.TuningJob.QUEUED
    # Nothing but the bucket of the tenant's validate_only rate (core.redis.keys).
    assert [k for k in await api_only.keys() if not k.endswith(b":validate-bucket")] == []
