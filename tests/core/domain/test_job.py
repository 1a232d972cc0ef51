"""The job record's JSON form: every field survives, nested records included; and job ids."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import pytest

from core.domain.job import (
    JOB_ID_PREFIX,
    JOB_ID_SHAPE,
    RANDOM_ID_CHARS,
    Checkpoint,
    DataStats,
    Hyperparameters,
    Job,
    Progress,
    Sampling,
    TrainingFile,
    new_job_id,
    random_id,
)
from core.domain.providers import ProviderChoice, ProviderKind, VertexTarget
from core.domain.snapshots import Snapshot
from core.domain.states import JobState
from core.errors import JobError


def a_job_with_every_field_set() -> Job:
    return Job(
        id="j1",
        tenant="team-a",
        base_model="models/gemini-1.5-flash-001-tuning",
        state=JobState.FAILED,
        display_name="d",
        description="desc",
        hyperparameters=Hyperparameters(3, 4, None, 0.5, 8),
        labels={"team": "a"},
        example_count=20,
        dataset="datasets/x",
        request_hash="abc",
        tuned_model="tunedModels/tj-j1",
        operation="tunedModels/tj-j1/operations/1",
        progress=Progress(1, 2, 50.0),
        snapshots=(Snapshot(1, 0, 0.5, 12.0), Snapshot(2, 1, 0.25)),
        error=JobError(3, "bad", "R", {"k": "v"}),
        create_time=1.0,
        update_time=2.0,
        start_time=3.0,
        end_time=4.0,
        status_fetch_time=5.0,
        polls=6,
        attempts=7,
        retrying_since=8.0,
        deleted=True,
        system_instruction="Answer in French.",
        validation_dataset="datasets/y",
        export_last_checkpoint_only=True,
        provider=ProviderChoice(
            ProviderKind.VERTEX,
            VertexTarget("team-v-project", "us-central1", "b", "p"),
            pools=(VertexTarget("team-v-pool", "europe-west4", "c"),),
        ),
        data_stats=DataStats(20, 400, 120, 10),
        checkpoints=(Checkpoint("1", 1, 5, "projects/p/locations/l/endpoints/1"), Checkpoint("2")),
        tuned_model_endpoint="projects/p/locations/l/endpoints/2",
        tuned_model_name="projects/p/locations/l/models/3@1",
        training_file=TrainingFile("gs://b/p/t/jobs/j.jsonl", 10, "AAAAAA==", "q", "a"),
        waiting_for=("team-v-project", "team-v-pool"),
        retry_reason="upstream 503",
        progress_time=1_700_000_500.0,
        stalled_since=1_700_000_400.0,
        prompt_template="Q: {input}\nA:",
        source_job="j" + "b" * 19,
        facade_id="numbers-model",
        sampling=Sampling(temperature=0.25, top_k=8),
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


OLD_RECORD = {
    "id": "j1",
    "tenant": "team-a",
    "base_model": "models/gemini-1.5-flash-001-tuning",
    "state": "SUCCEEDED",
    "display_name": "d",
    "description": "",
    "hyperparameters": {
        "epoch_count": 2,
        "batch_size": 4,
        "learning_rate": None,
        "learning_rate_multiplier": None,
    },
    "labels": {},
    "example_count": 20,
    "dataset": "",
    "request_hash": "abc",
    "tuned_model": "tunedModels/tj-j1",
    "operation": "tunedModels/tj-j1/operations/1",
    "progress": {"completed_steps": 10, "total_steps": 10, "completed_percent": 100.0},
    "snapshots": [{"step": 1, "epoch": 0, "mean_loss": 0.5, "compute_time": None}],
    "error": None,
    "create_time": 1.0,
    "update_time": 2.0,
    "start_time": 1.5,
    "end_time": 2.0,
    "status_fetch_time": 2.0,
    "polls": 3,
    "attempts": 1,
    "retrying_since": None,
    "deleted": False,
}
"""A record as the platform wrote it before jobs had a provider (and Vertex AI's fields)."""


def test_every_field_of_the_example_differs_from_its_default() -> None:
    job, default = a_job_with_every_field_set(), Job(id="", tenant="", base_model="")
    same = [
        f.name for f in dataclasses.fields(Job) if getattr(job, f.name) == getattr(default, f.name)
    ]
    assert same == [], "set these fields in the example so the round trip covers them"


def test_the_json_form_is_what_asdict_gives_and_reads_back_equal() -> None:
    job = a_job_with_every_field_set()
    expected = json.loads(json.dumps(dataclasses.asdict(job)))
    expected["snapshots"] = {  # kept as columns of text (core.domain.snapshots)
        "count": 2,
        "step": "[1,2]",
        "epoch": "[0,1]",
        "mean_loss": "[0.5,0.25]",
        "compute_time": "[12.0,null]",
    }
    assert json.loads(job.to_json()) == expected
    assert Job.from_json(job.to_json()) == job


def test_replace_and_from_json_make_what_the_dataclass_would() -> None:
    job = a_job_with_every_field_set()
    changed = job.replace(polls=9, state=JobState.RUNNING, labels={"x": "y"})
    expected = dataclasses.replace(job, polls=9, state=JobState.RUNNING, labels={"x": "y"})
    assert vars(changed) == vars(expected) and changed == expected
    assert (job.polls, job.state) == (6, JobState.FAILED)  # the original is untouched
    read = Job.from_json(job.to_json())
    fields = {f.name: getattr(job, f.name) for f in dataclasses.fields(Job)}
    assert vars(read) == vars(Job(**fields))
    older = json.loads(job.to_json())
    older["snapshots"] = [  # as written before the columns, one without compute_time
        {"step": 1, "epoch": 0, "mean_loss": 0.5},
        {"step": 2, "epoch": 1, "mean_loss": 0.25, "compute_time": None},
    ]
    assert Job.from_json(json.dumps(older)).snapshots == (Snapshot(1, 0, 0.5), job.snapshots[1])
    for made in (changed, read):
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.polls = 1  # type: ignore[misc]


def test_replace_refuses_a_name_that_is_not_a_field() -> None:
    with pytest.raises(TypeError, match="pols"):
        a_job_with_every_field_set().replace(pols=1)


def test_a_record_written_before_providers_loads_as_a_gemini_api_job() -> None:
    job = Job.from_json(json.dumps(OLD_RECORD))
    assert job.provider == ProviderChoice(ProviderKind.GEMINI_API)
    assert job.hyperparameters == Hyperparameters(2, 4, None, None, None)
    assert (job.system_instruction, job.validation_dataset) == ("", "")
    assert not job.export_last_checkpoint_only
    assert (job.data_stats, job.checkpoints, job.tuned_model_endpoint) == (None, (), "")
    assert job.tuned_model == "tunedModels/tj-j1" and job.state == JobState.SUCCEEDED
    assert job.sampling is None
    assert Job.from_json(job.to_json()) == job  # and is written back whole


def test_job_ids_are_the_ones_base64_would_make() -> None:
    # Ids derived from a request_id must never change: a retry finds its job by them.
    for n in range(2000):
        digest = hashlib.sha256(f"team-a\0req-{n}".encode()).digest()
        expected = base64.b32encode(digest).decode().lower()[:RANDOM_ID_CHARS]
        assert new_job_id("team-a", f"req-{n}") == JOB_ID_PREFIX + expected
        assert JOB_ID_SHAPE.fullmatch(random_id(JOB_ID_PREFIX))
