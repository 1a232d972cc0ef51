"""Vertex AI ``tuningJobs`` over plain HTTP: create, get, list, cancel, and their errors.

The emulator is served here with its application at hand (``VertexEmulator``) so that a test
can put training files in its object store, as the platform's worker would upload them; the
other ``test_vertex_*`` files use the same helper.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web

from emulator import EmulatorConfig, Grant, create_app
from emulator.state import STATE, EmulatorState
from emulator.vertex_catalog import VertexBaseModel
from tests.clocks import FakeClock
from tests.emulator.helpers import CLOUD, CLOUD_PLATFORM, GRANTS, OWNER, bearer, detail, error_of

CLOUD_OTHER = Grant("client-d", "secret-d", "refresh-d", (CLOUD_PLATFORM,))
PROJECT_NUMBER = 646763706049
LOCATION = "us-central1"
PARENT = f"projects/my-project/locations/{LOCATION}"
TRAINING_URI = "gs://bucket/train.jsonl"
# 10 examples, 3 epochs, batch 8 (the emulator's default): 2 steps an epoch, 6 steps, which at
# 2 steps a second take 3 s after the 5 s of PENDING.
PENDING_S = 5.0
RUN_S = 3.0


def example_line(prompt: str = "hello there", answer: str = "hi") -> str:
    """One JSONL training example: a user turn and a model turn (13 characters by default)."""
    turns = [("user", prompt), ("model", answer)]
    contents = [{"role": role, "parts": [{"text": text}]} for role, text in turns]
    return json.dumps({"contents": contents})


def job_body(uri: str = TRAINING_URI, **hyper: Any) -> dict[str, Any]:
    """A TuningJob create body for gemini-2.5-flash with 3 epochs unless ``hyper`` says."""
    return {
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {
            "trainingDatasetUri": uri,
            "hyperParameters": {"epochCount": "3"} | hyper,
        },
        "tunedModelDisplayName": "numbers",
        "labels": {"platform-job": "job-1"},
    }


@dataclass
class VertexEmulator:
    """A running emulator, its state (for the object store), clock and HTTP client."""

    url: str
    state: EmulatorState
    clock: FakeClock
    http: httpx.AsyncClient

    def put_file(self, uri: str = TRAINING_URI, lines: int = 10) -> str:
        """Put a JSONL training file of ``lines`` examples in the object store; its URI."""
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        data = "".join(example_line() + "\n" for _ in range(lines)).encode()
        self.state.objects.put(bucket, name, data, now=self.clock())
        return uri

    async def headers(self, grant: Grant = CLOUD) -> dict[str, str]:
        """An Authorization header from ``grant`` (cloud-platform by default)."""
        return await bearer(self.http, grant)


@asynccontextmanager
async def vertex_emulator(
    clock: FakeClock, config: EmulatorConfig | None = None
) -> AsyncIterator[VertexEmulator]:
    """Serve an emulator on port 0 with the test grants and project number 646763706049."""
    config = config or EmulatorConfig(
        grants=(*GRANTS, CLOUD_OTHER), vertex_project_numbers={"my-project": PROJECT_NUMBER}
    )
    app = create_app(config, clock)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
            yield VertexEmulator(url, app[STATE], clock, http)
    finally:
        await runner.cleanup()


@pytest.fixture
async def vertex(clock: FakeClock) -> AsyncIterator[VertexEmulator]:
    """A Vertex-ready emulator with a 10-example training file at ``TRAINING_URI``."""
    async with vertex_emulator(clock) as emulator:
        emulator.put_file()
        yield emulator


async def create_job(
    vertex: VertexEmulator,
    body: dict[str, Any] | None = None,
    version: str = "v1",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Create a tuning job (asserting success) and return it."""
    response = await vertex.http.post(
        f"/{version}/{PARENT}/tuningJobs",
        json=body or job_body(),
        headers=headers or await vertex.headers(),
    )
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def get_job(
    vertex: VertexEmulator, name: str, version: str = "v1", **params: str
) -> dict[str, Any]:
    """GET a job (asserting success)."""
    response = await vertex.http.get(
        f"/{version}/{name}", params=params, headers=await vertex.headers()
    )
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def test_create_answers_the_job_pending_with_a_numeric_id(vertex: VertexEmulator) -> None:
    job = await create_job(vertex)

    prefix = f"projects/{PROJECT_NUMBER}/locations/{LOCATION}/tuningJobs/"
    assert job["name"].startswith(prefix)
    job_id = job["name"].removeprefix(prefix)
    assert job_id.isdigit() and len(job_id) == 19
    assert job["state"] == "JOB_STATE_PENDING"
    assert job["createTime"] == "2026-11-21T13:40:00.000000Z"
    assert job["labels"] == {"platform-job": "job-1"}
    assert job["supervisedTuningSpec"]["hyperParameters"]["epochCount"] == "3"
    assert not {"startTime", "endTime", "error", "tunedModel"} & set(job)


async def test_a_job_runs_then_succeeds_with_model_endpoint_and_checkpoints(
    vertex: VertexEmulator,
) -> None:
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(PENDING_S)
    running = await get_job(vertex, name)
    vertex.clock.advance(RUN_S)

    done = await get_job(vertex, name)

    assert running["state"] == "JOB_STATE_RUNNING"
    assert running["startTime"] == "2026-11-21T13:40:05.000000Z"
    assert "tunedModel" not in running
    assert done["state"] == "JOB_STATE_SUCCEEDED"
    assert done["endTime"] == "2026-11-21T13:40:08.000000Z"
    parent = f"projects/{PROJECT_NUMBER}/locations/{LOCATION}"
    tuned = done["tunedModel"]
    assert tuned["model"].startswith(parent + "/models/") and tuned["model"].endswith("@1")
    assert tuned["endpoint"].startswith(parent + "/endpoints/")
    checkpoints = tuned["checkpoints"]
    assert [(c["checkpointId"], c["epoch"], c["step"]) for c in checkpoints] == [
        ("1", "1", "2"),
        ("2", "2", "4"),
        ("3", "3", "6"),
    ]
    assert checkpoints[-1]["endpoint"] == tuned["endpoint"]
    assert len({c["endpoint"] for c in checkpoints}) == 3
    assert "error" not in done


async def test_data_stats_are_computed_from_the_training_file(vertex: VertexEmulator) -> None:
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(PENDING_S)

    stats = (await get_job(vertex, name))["tuningDataStats"]["supervisedTuningDataStats"]

    assert stats["tuningDatasetExampleCount"] == "10"
    assert stats["totalTuningCharacterCount"] == "130"  # 10 x ("hello there" + "hi")
    assert stats["totalBillableTokenCount"] == "40"  # ceil(13 / 4) per example
    assert stats["tuningStepCount"] == "6"


async def test_export_last_checkpoint_only_keeps_one(vertex: VertexEmulator) -> None:
    body = job_body()
    body["supervisedTuningSpec"]["exportLastCheckpointOnly"] = True
    name = (await create_job(vertex, body))["name"]
    vertex.clock.advance(PENDING_S + RUN_S)

    tuned = (await get_job(vertex, name))["tunedModel"]

    assert [c["epoch"] for c in tuned["checkpoints"]] == ["3"]
    assert tuned["checkpoints"][0]["endpoint"] == tuned["endpoint"]


async def test_v1beta1_has_the_sub_state_and_accepts_batch_size(vertex: VertexEmulator) -> None:
    job = await create_job(vertex, job_body(batchSize="5", learningRate=0.0002), "v1beta1")
    vertex.clock.advance(PENDING_S)

    running = await get_job(vertex, job["name"], "v1beta1")
    on_v1 = await get_job(vertex, job["name"], "v1")

    assert job["tuningJobState"] == "TUNING_JOB_STATE_PROCESSING_DATASET"
    assert running["tuningJobState"] == "TUNING_JOB_STATE_TUNING"
    hyper = running["supervisedTuningSpec"]["hyperParameters"]
    assert hyper["batchSize"] == "5" and hyper["learningRate"] == 0.0002
    # 10 examples in batches of 5: 2 steps an epoch, 6 in all.
    assert running["tuningDataStats"]["supervisedTuningDataStats"]["tuningStepCount"] == "6"
    assert "tuningJobState" not in on_v1
    assert "batchSize" not in on_v1["supervisedTuningSpec"]["hyperParameters"]


async def test_enums_are_numbers_when_asked(vertex: VertexEmulator) -> None:
    job = await create_job(vertex, job_body(adapterSize="ADAPTER_SIZE_EIGHT"))

    numbered = await get_job(vertex, job["name"], **{"$alt": "json;enum-encoding=int"})

    assert numbered["state"] == 2
    assert numbered["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == 3
    assert job["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == "ADAPTER_SIZE_EIGHT"


async def test_the_project_id_and_its_number_name_the_same_job(vertex: VertexEmulator) -> None:
    name = (await create_job(vertex))["name"]
    job_id = name.rsplit("/", 1)[1]

    by_id = await get_job(vertex, f"{PARENT}/tuningJobs/{job_id}")

    assert by_id["name"] == name


async def test_list_filters_on_labels_and_state_and_pages(vertex: VertexEmulator) -> None:
    headers = await vertex.headers()
    for run in ("a", "b", "a"):
        await create_job(vertex, job_body() | {"labels": {"run": run}})
    listed = []
    token = ""
    while True:
        params = {"filter": 'labels.run="a" AND state="JOB_STATE_PENDING"', "pageSize": "1"}
        if token:
            params["pageToken"] = token
        response = await vertex.http.get(f"/v1/{PARENT}/tuningJobs", params=params, headers=headers)
        body = response.json()
        listed += body["tuningJobs"]
        token = body.get("nextPageToken", "")
        if not token:
            break

    running = await vertex.http.get(
        f"/v1/{PARENT}/tuningJobs", params={"filter": "state=JOB_STATE_RUNNING"}, headers=headers
    )

    assert [job["labels"]["run"] for job in listed] == ["a", "a"]
    assert running.json() == {}


async def test_list_is_per_project_and_client(vertex: VertexEmulator) -> None:
    await create_job(vertex)
    other = await vertex.headers(CLOUD_OTHER)

    theirs = await vertex.http.get(f"/v1/{PARENT}/tuningJobs", headers=other)
    elsewhere = await vertex.http.get(
        f"/v1/projects/another/locations/{LOCATION}/tuningJobs", headers=await vertex.headers()
    )

    assert theirs.json() == {}
    assert elsewhere.json() == {}


async def test_another_client_is_denied_the_job(vertex: VertexEmulator) -> None:
    name = (await create_job(vertex))["name"]

    response = await vertex.http.get(f"/v1/{name}", headers=await vertex.headers(CLOUD_OTHER))

    assert response.status_code == 403
    error = error_of(response)
    assert error["status"] == "PERMISSION_DENIED"
    assert detail(error, "google.rpc.ErrorInfo")["reason"] == "IAM_PERMISSION_DENIED"
    assert "aiplatform.tuningJobs.get" in error["message"]


async def test_an_unknown_job_is_404(vertex: VertexEmulator) -> None:
    response = await vertex.http.get(
        f"/v1/{PARENT}/tuningJobs/1234567890123456789", headers=await vertex.headers()
    )

    assert response.status_code == 404
    assert error_of(response)["status"] == "NOT_FOUND"


async def test_cancel_goes_through_cancelling_to_cancelled(vertex: VertexEmulator) -> None:
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(PENDING_S + 1.0)  # 2 steps done
    headers = await vertex.headers()

    answer = await vertex.http.post(f"/v1/{name}:cancel", json={}, headers=headers)
    cancelling = await get_job(vertex, name)
    vertex.clock.advance(1.0)
    cancelled = await get_job(vertex, name)

    assert answer.status_code == 200 and answer.json() == {}
    assert cancelling["state"] == "JOB_STATE_CANCELLING"
    assert cancelled["state"] == "JOB_STATE_CANCELLED"
    assert cancelled["error"] == {"code": 1, "message": "CANCELLED"}
    assert cancelled["endTime"] == "2026-11-21T13:40:07.000000Z"
    assert "tunedModel" not in cancelled


async def test_a_job_may_still_finish_while_cancelling(vertex: VertexEmulator) -> None:
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(PENDING_S + RUN_S - 0.5)
    await vertex.http.post(f"/v1/{name}:cancel", json={}, headers=await vertex.headers())
    vertex.clock.advance(1.0)

    job = await get_job(vertex, name)

    assert job["state"] == "JOB_STATE_SUCCEEDED"


async def test_cancelling_a_finished_job_is_refused_and_changes_nothing(
    vertex: VertexEmulator,
) -> None:
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(PENDING_S + RUN_S)

    response = await vertex.http.post(f"/v1/{name}:cancel", json={}, headers=await vertex.headers())

    assert response.status_code == 400
    assert error_of(response)["status"] == "FAILED_PRECONDITION"
    assert (await get_job(vertex, name))["state"] == "JOB_STATE_SUCCEEDED"


async def test_a_missing_training_file_fails_the_job_after_pending(
    vertex: VertexEmulator,
) -> None:
    job = await create_job(vertex, job_body("gs://bucket/missing.jsonl"))
    vertex.clock.advance(PENDING_S)

    failed = await get_job(vertex, job["name"])

    assert job["state"] == "JOB_STATE_PENDING"
    assert failed["state"] == "JOB_STATE_FAILED"
    assert failed["error"]["code"] == 3
    assert "gs://bucket/missing.jsonl" in failed["error"]["message"]
    assert "startTime" not in failed and "tunedModel" not in failed


async def test_a_malformed_training_file_fails_the_job(vertex: VertexEmulator) -> None:
    vertex.state.objects.put("bucket", "bad.jsonl", b'{"contents": []}\n', now=vertex.clock())
    name = (await create_job(vertex, job_body("gs://bucket/bad.jsonl")))["name"]
    vertex.clock.advance(PENDING_S)

    failed = await get_job(vertex, name)

    assert failed["state"] == "JOB_STATE_FAILED"
    assert "line 1" in failed["error"]["message"]


async def test_inspection_lists_every_job_with_labels_and_state(vertex: VertexEmulator) -> None:
    await create_job(vertex)
    await create_job(vertex, headers=await vertex.headers(CLOUD_OTHER))

    listed = (await vertex.http.get("/_emulator/vertex/tuningJobs")).json()["tuningJobs"]

    assert [job["owner"] for job in listed] == ["client-c", "client-d"]
    assert all(job["labels"] == {"platform-job": "job-1"} for job in listed)
    assert {job["state"] for job in listed} == {"JOB_STATE_PENDING"}


async def test_stats_count_vertex_routes(vertex: VertexEmulator) -> None:
    name = (await create_job(vertex))["name"]
    await get_job(vertex, name)

    requests = (await vertex.http.get("/_emulator/stats")).json()["requests"]

    assert requests["POST tuningJobs.create"] == 1
    assert requests["GET tuningJobs.get"] == 1


# Validation ------------------------------------------------------------------------------


async def _refused(
    vertex: VertexEmulator, body: dict[str, Any], version: str = "v1"
) -> dict[str, Any]:
    response = await vertex.http.post(
        f"/{version}/{PARENT}/tuningJobs", json=body, headers=await vertex.headers()
    )
    assert response.status_code == 400, response.text
    return error_of(response)


async def test_v1_refuses_batch_size_as_an_unknown_field(vertex: VertexEmulator) -> None:
    error = await _refused(vertex, job_body(batchSize=4))

    assert error["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "batchSize"' in error["message"]
    violation = detail(error, "google.rpc.BadRequest")["fieldViolations"][0]
    assert violation["field"] == "tuning_job.supervised_tuning_spec.hyper_parameters"
    info = detail(error, "google.rpc.ErrorInfo")
    assert info["domain"] == "aiplatform.googleapis.com"
    assert info["metadata"]["service"] == "aiplatform.googleapis.com"


async def test_an_unknown_top_level_field_is_refused_on_both_versions(
    vertex: VertexEmulator,
) -> None:
    for version in ("v1", "v1beta1"):
        error = await _refused(vertex, job_body() | {"tunedModelId": "x"}, version)
        assert "Unknown name \"tunedModelId\" at 'tuning_job'" in error["message"]


@pytest.mark.parametrize(
    "labels",
    [
        {"Upper": "x"},
        {"1starts-with-digit": "x"},
        {"key": "Has Space"},
        {"k" * 65: "x"},
        {"key": "v" * 65},
        {f"k{n}": "v" for n in range(65)},
    ],
)
async def test_labels_rules(vertex: VertexEmulator, labels: dict[str, str]) -> None:
    error = await _refused(vertex, job_body() | {"labels": labels})

    assert error["status"] == "INVALID_ARGUMENT"


async def test_labels_at_the_limits_are_accepted(vertex: VertexEmulator) -> None:
    labels = {f"k{n}-_x": "v" * 64 for n in range(63)} | {"k" * 64: ""}

    job = await create_job(vertex, job_body() | {"labels": labels})

    assert job["labels"] == labels


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"baseModel": "gemini-1.5-flash-002"}, "not supported"),
        ({"baseModel": "gemini-2.0-flash-001"}, "retired on 2026-06-01"),
        ({"tunedModelDisplayName": "x" * 129}, "128"),
        ({"supervisedTuningSpec": {"trainingDatasetUri": "/local/file.jsonl"}}, "gs://"),
        ({"supervisedTuningSpec": {}}, "training_dataset_uri is required"),
    ],
)
async def test_create_validation(
    vertex: VertexEmulator, change: dict[str, Any], words: str
) -> None:
    error = await _refused(vertex, job_body() | change)

    assert words in error["message"]


async def test_an_adapter_size_the_model_lacks_is_refused(vertex: VertexEmulator) -> None:
    body = job_body(adapterSize="ADAPTER_SIZE_SIXTEEN") | {"baseModel": "gemini-2.5-pro"}

    error = await _refused(vertex, body)

    assert error["message"] == "The adapter size is not supported for this base model."


async def test_a_gemini_scope_is_not_enough(vertex: VertexEmulator) -> None:
    response = await vertex.http.post(
        f"/v1/{PARENT}/tuningJobs", json=job_body(), headers=await vertex.headers(OWNER)
    )

    assert response.status_code == 403
    error = error_of(response)
    info = detail(error, "google.rpc.ErrorInfo")
    assert info["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert info["metadata"]["service"] == "aiplatform.googleapis.com"
    assert "cloud-platform" in response.headers["WWW-Authenticate"]


async def test_no_token_is_401(vertex: VertexEmulator) -> None:
    response = await vertex.http.get(f"/v1/{PARENT}/tuningJobs")

    assert response.status_code == 401


async def test_a_missing_validation_file_fails_the_job(vertex: VertexEmulator) -> None:
    body = job_body()
    body["supervisedTuningSpec"]["validationDatasetUri"] = "gs://bucket/missing-validation.jsonl"
    name = (await create_job(vertex, body))["name"]
    vertex.clock.advance(PENDING_S)

    failed = await get_job(vertex, name)

    assert failed["state"] == "JOB_STATE_FAILED"
    assert "missing-validation.jsonl" in failed["error"]["message"]


async def test_over_long_examples_are_dropped_and_counted(clock: FakeClock) -> None:
    model = VertexBaseModel("gemini-2.5-flash", max_example_tokens=4)
    config = EmulatorConfig(grants=GRANTS, vertex_models=(model,))
    async with vertex_emulator(clock, config) as emulator:
        long_line = example_line("a much longer prompt than the others")
        data = (example_line() + "\n" + long_line + "\n" + example_line() + "\n").encode()
        emulator.state.objects.put("bucket", "train.jsonl", data, now=clock())
        name = (await create_job(emulator, job_body()))["name"]
        clock.advance(PENDING_S)

        stats = (await get_job(emulator, name))["tuningDataStats"]["supervisedTuningDataStats"]

    assert stats["tuningDatasetExampleCount"] == "2"
    assert stats["totalTruncatedExampleCount"] == "1"
    assert stats["truncatedExampleIndices"] == ["1"]
    assert len(stats["droppedExampleReasons"]) == 1


async def test_a_file_uploaded_with_the_json_api_trains(clock: FakeClock) -> None:
    async with vertex_emulator(clock) as emulator:
        headers = await emulator.headers()
        data = "".join(example_line() + "\n" for _ in range(4)).encode()
        upload = await emulator.http.post(
            "/upload/storage/v1/b/uploads/o",
            params={"uploadType": "media", "name": "run-1/train.jsonl", "ifGenerationMatch": "0"},
            content=data,
            headers=headers | {"Content-Type": "application/jsonl"},
        )
        assert upload.status_code == 200, upload.text
        name = (await create_job(emulator, job_body("gs://uploads/run-1/train.jsonl")))["name"]
        clock.advance(PENDING_S)

        job = await get_job(emulator, name)

    assert job["tuningDataStats"]["supervisedTuningDataStats"]["tuningDatasetExampleCount"] == "4"
