"""UploadDataset / GetDataset, and tuning jobs that reference a dataset."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import grpc
import pytest

from tests.conftest import SystemFactory
from tests.harness import State, System
from tests.rpc_errors import violations
from tuning.v1 import tuning_job_pb2, tuning_service_pb2


def jsonl(count: int, **overrides: Mapping[str, str]) -> bytes:
    rows: list[Mapping[str, str]] = [
        {"text_input": f"question: {n}?", "output": str(n + 1)} for n in range(count)
    ]
    for index, row in overrides.items():
        rows[int(index)] = row
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


async def test_an_upload_is_validated_stored_and_readable(system: System) -> None:
    dataset = await system.upload(jsonl(25), display_name="numbers", chunk_bytes=64)
    assert dataset.name.startswith("datasets/")
    assert dataset.stats.example_count == 25
    assert dataset.stats.size_bytes == len(jsonl(25))
    assert any(w.field == "examples" and "recommended" in w.message for w in dataset.warnings)
    request = tuning_service_pb2.GetDatasetRequest(name=dataset.name)
    assert await system.stub.GetDataset(request, metadata=system.auth()) == dataset
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await system.stub.GetDataset(request, metadata=system.auth("team-b"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_job_tunes_on_an_uploaded_dataset(system: System) -> None:
    dataset = await system.upload(jsonl(30))
    job = await system.create(dataset=dataset.name, training_examples=[])
    assert job.dataset == dataset.name
    done = await system.finish_training(job.name)
    assert done.state == State.SUCCEEDED
    assert done.progress.total_steps == 15  # ceil(30 examples * 2 epochs / batch 4)


def sdk_columns(count: int) -> dict[str, list[object]]:
    """The column layout Google's SDK reads: {"text_input": [...], "output": [...]}."""
    return {
        "text_input": [f"question: {n}?" for n in range(count)],
        "output": [str(n + 1) for n in range(count)],
    }


async def test_a_job_tunes_on_a_json_dataset_in_the_sdks_column_layout(system: System) -> None:
    content = json.dumps(sdk_columns(30)).encode()
    dataset = await system.upload(content, "JSON", chunk_bytes=100)
    assert dataset.stats.example_count == 30
    assert dataset.stats.longest_input_chars == len("question: 29?")
    job = await system.create(dataset=dataset.name, training_examples=[])
    done = await system.finish_training(job.name)
    assert done.state == State.SUCCEEDED
    assert done.progress.total_steps == 15  # ceil(30 examples * 2 epochs / batch 4)


async def test_a_bad_column_element_is_named_by_index(api_only: System) -> None:
    document = sdk_columns(25)
    document["output"][7] = 8
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.upload(json.dumps(document).encode(), "JSON")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == {
        "examples[7].output": "examples[7]: output must be a string, not a number"
    }


async def test_every_bad_row_is_named_and_nothing_is_stored(system: System) -> None:
    content = jsonl(25, **{"3": {"text_input": "x", "output": ""}, "9": {"text_input": "y"}})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await system.upload(content)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"lines[4].output", "lines[10].output"} <= set(violations(caught.value))
    assert not [k for k in await system.keys() if b":dataset:" in k]


async def test_csv_with_its_own_column_names_and_any_script(system: System) -> None:
    rows = ["prompt,answer"] + [f'"नमस्ते {n} 🙂","สวัสดี {n}"' for n in range(20)]
    dataset = await system.upload(
        "\n".join(rows).encode(), "CSV", input_field="prompt", output_field="answer"
    )
    assert dataset.stats.example_count == 20
    assert dataset.stats.longest_input_chars == len("नमस्ते 19 🙂")


async def test_an_oversized_upload_is_refused_with_a_clear_status(
    make_system: SystemFactory,
) -> None:
    async with make_system(dataset_stream_max_bytes=2000) as system:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.upload(jsonl(100))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "content" in violations(caught.value)
        assert await system.stored_files() == []  # nothing of it was kept


async def test_the_first_message_must_describe_the_dataset(api_only: System) -> None:
    parts = iter([tuning_service_pb2.UploadDatasetRequest(chunk=b"{}")])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.stub.UploadDataset(parts, metadata=api_only.auth())
    assert "dataset" in violations(caught.value)


async def test_a_job_names_one_source_of_examples_that_exists(api_only: System) -> None:
    dataset = await api_only.upload(jsonl(20))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"dataset": dataset.name}, "tuning_job.dataset"),  # and inline examples too
        ({"dataset": "datasets/nope", "training_examples": []}, "tuning_job.dataset"),
    ]
    for fields, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api_only.create(**fields)
        assert field in violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await api_only.create("team-b", dataset=dataset.name, training_examples=[])
    assert "not found" in violations(other.value)["tuning_job.dataset"]


async def test_validate_only_reports_total_steps_and_stores_nothing(api_only: System) -> None:
    request = tuning_service_pb2.CreateTuningJobRequest(
        tuning_job=tuning_job_pb2.TuningJob(
            base_model="models/gemini-1.5-flash-001-tuning",
            training_examples=[
                tuning_job_pb2.TrainingExample(text_input=str(n), output="x") for n in range(42)
            ],
        ),
        validate_only=True,
    )
    job = await api_only.stub.CreateTuningJob(request, metadata=api_only.auth())
    assert job.progress.total_steps == 53  # ceil(42 * 5 default epochs / 4 default batch)
    assert not [k for k in await api_only.keys() if b":job:" in k]
