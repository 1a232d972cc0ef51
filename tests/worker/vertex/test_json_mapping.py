"""Vertex AI's JSON to and from the domain types, judged by Google's own v1 protos."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.cloud.aiplatform_v1.types import JobState, tuning_job

from core.domain.job import Example, Hyperparameters
from core.domain.providers import VertexTarget
from core.domain.upstream import UpstreamState
from core.errors import Reason, UpstreamRejected
from core.upstream_http import open_session
from worker import fence
from worker.provider import TuningRequest
from worker.vertex import StorageClient, VertexClient, VertexProvider
from worker.vertex.json_mapping import (
    STATES,
    endpoints_of,
    model_of,
    status_from_tuning_job,
    training_lines,
    tuning_job_body,
)

NAME = "projects/646763706049/locations/us-central1/tuningJobs/6284765961371254784"
URI = "gs://bucket/staging/j.jsonl"


def request(**hyper: Any) -> TuningRequest:
    return TuningRequest(
        model_id="tj-x",
        base_model="models/gemini-2.5-flash",
        display_name="numbers",
        description="adds one",
        hyperparameters=Hyperparameters(**hyper),
        examples=[Example("1", "2"), Example("2", "3")],
    )


def as_v1_proto(body: dict[str, Any]) -> tuning_job.TuningJob:
    """The body parsed strictly as aiplatform v1's TuningJob: an unknown field fails."""
    job: tuning_job.TuningJob = tuning_job.TuningJob.from_json(json.dumps(body))
    return job


def test_each_example_is_one_user_turn_and_one_model_turn() -> None:
    lines = list(training_lines([Example("7", "8"), Example("x", "y")]))
    assert all(line.endswith(b"\n") for line in lines)
    assert json.loads(lines[0]) == {
        "contents": [
            {"role": "user", "parts": [{"text": "7"}]},
            {"role": "model", "parts": [{"text": "8"}]},
        ]
    }
    assert len(lines) == 2


def test_a_system_instruction_goes_on_every_line() -> None:
    lines = [json.loads(x) for x in training_lines([Example("7", "8")] * 2, "be brief")]
    assert all(x["systemInstruction"] == {"parts": [{"text": "be brief"}]} for x in lines)


def test_the_body_is_a_valid_v1_tuning_job() -> None:
    body = tuning_job_body(
        request(epoch_count=3, learning_rate_multiplier=0.5, adapter_size=4), URI, {"k": "j1"}
    )
    job = as_v1_proto(body)
    assert job.base_model == "gemini-2.5-flash"
    spec = job.supervised_tuning_spec
    assert spec.training_dataset_uri == URI
    assert spec.hyper_parameters.epoch_count == 3
    assert body["supervisedTuningSpec"]["hyperParameters"]["epochCount"] == "3"
    assert spec.hyper_parameters.learning_rate_multiplier == 0.5
    assert spec.hyper_parameters.adapter_size.name == "ADAPTER_SIZE_FOUR"
    assert (job.tuned_model_display_name, job.description) == ("numbers", "adds one")
    assert dict(job.labels) == {"k": "j1"}


def test_unset_hyperparameters_are_left_to_the_upstream() -> None:
    body = tuning_job_body(request(), URI, {})
    assert body["supervisedTuningSpec"]["hyperParameters"] == {}
    as_v1_proto(body)


@pytest.mark.parametrize("hyper", [{"batch_size": 4}, {"learning_rate": 0.001}])
def test_what_v1_cannot_express_is_refused(hyper: dict[str, Any]) -> None:
    with pytest.raises(UpstreamRejected, match="v1"):
        tuning_job_body(request(**hyper), URI, {})


def test_an_unknown_adapter_size_is_refused() -> None:
    with pytest.raises(UpstreamRejected, match="adapter size 3"):
        tuning_job_body(request(adapter_size=3), URI, {})


def test_every_v1_job_state_has_its_upstream_state() -> None:
    assert set(STATES) == set(JobState.__members__)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("JOB_STATE_PENDING", UpstreamState.RUNNING),
        ("JOB_STATE_QUEUED", UpstreamState.RUNNING),
        ("JOB_STATE_RUNNING", UpstreamState.RUNNING),
        ("JOB_STATE_CANCELLING", UpstreamState.RUNNING),
        ("JOB_STATE_PAUSED", UpstreamState.RUNNING),
        ("JOB_STATE_UPDATING", UpstreamState.RUNNING),
        ("JOB_STATE_SUCCEEDED", UpstreamState.SUCCEEDED),
        ("JOB_STATE_PARTIALLY_SUCCEEDED", UpstreamState.SUCCEEDED),
        ("JOB_STATE_FAILED", UpstreamState.FAILED),
        ("JOB_STATE_EXPIRED", UpstreamState.FAILED),
        ("JOB_STATE_CANCELLED", UpstreamState.CANCELLED),
        ("JOB_STATE_FROM_THE_FUTURE", UpstreamState.RUNNING),
    ],
)
def test_job_states(state: str, expected: UpstreamState) -> None:
    assert status_from_tuning_job({"name": NAME, "state": state}).state == expected


def test_the_ref_is_the_tuning_job_which_a_cancel_stops() -> None:
    ref = status_from_tuning_job({"name": NAME, "state": "JOB_STATE_PENDING"}, "tj-x").ref
    assert (ref.tuned_model, ref.operation, ref.model_id) == (NAME, NAME, "tj-x")


def test_a_failed_job_keeps_the_upstreams_code_and_words() -> None:
    job = {
        "name": NAME,
        "state": "JOB_STATE_FAILED",
        "error": {"code": 13, "message": "Failed to create endpoint"},
        "tunedModel": {"model": "projects/p/locations/l/models/42@1"},
    }
    status = status_from_tuning_job(job)
    assert status.error is not None
    assert status.error.code == 13 and status.error.reason == Reason.UPSTREAM_TUNING_FAILED
    assert "Failed to create endpoint" in status.error.message
    assert model_of(job) == "projects/p/locations/l/models/42"


def test_an_expired_job_without_an_error_says_how_it_ended() -> None:
    status = status_from_tuning_job({"name": NAME, "state": "JOB_STATE_EXPIRED"})
    assert status.error is not None and "EXPIRED" in status.error.message


def test_times_and_progress() -> None:
    job = {
        "name": NAME,
        "state": "JOB_STATE_RUNNING",
        "createTime": "2026-12-01T10:00:00.000001Z",
        "startTime": "2026-12-01T10:02:30.500000Z",
        "tuningJobMetadata": {"completedStepCount": "25"},
        "tuningDataStats": {"supervisedTuningDataStats": {"tuningStepCount": "100"}},
    }
    status = status_from_tuning_job(job)
    assert status.start_time == pytest.approx(1796119350.5)
    assert status.end_time is None
    assert (status.progress.completed_steps, status.progress.total_steps) == (25, 100)
    assert status.progress.completed_percent == 25.0


def test_progress_is_optional_and_a_success_is_all_done() -> None:
    assert status_from_tuning_job({"name": NAME}).progress.total_steps == 0
    done = {
        "name": NAME,
        "state": "JOB_STATE_SUCCEEDED",
        "endTime": "2026-12-01T11:00:00Z",
        "tuningDataStats": {"supervisedTuningDataStats": {"tuningStepCount": "40"}},
    }
    status = status_from_tuning_job(done)
    assert status.progress.completed_percent == 100.0
    assert status.end_time == pytest.approx(1796122800.0)


def test_every_endpoint_once_checkpoints_included() -> None:
    job = {
        "tunedModel": {
            "endpoint": "projects/p/locations/l/endpoints/3",
            "checkpoints": [
                {"checkpointId": "1", "endpoint": "projects/p/locations/l/endpoints/1"},
                {"checkpointId": "2", "endpoint": "projects/p/locations/l/endpoints/3"},
            ],
        }
    }
    assert endpoints_of(job) == [
        "projects/p/locations/l/endpoints/3",
        "projects/p/locations/l/endpoints/1",
    ]
    assert endpoints_of({}) == [] and model_of({}) == ""


async def test_a_label_key_google_cloud_would_refuse_is_refused() -> None:
    async with open_session(timeout_s=10.0) as http:
        client, storage = VertexClient(http, "us-central1"), StorageClient(http, fence=fence.check)
        with pytest.raises(ValueError, match="label key"):
            VertexProvider(client, storage, VertexTarget("p", "l", "b"), label_key="Job")
