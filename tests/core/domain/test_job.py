"""The job record's JSON form: every field survives, nested records included."""

from __future__ import annotations

import dataclasses
import json

from core.domain.job import Hyperparameters, Job, Progress, Snapshot
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
        hyperparameters=Hyperparameters(3, 4, None, 0.5),
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
    )


def test_every_field_of_the_example_differs_from_its_default() -> None:
    job, default = a_job_with_every_field_set(), Job(id="", tenant="", base_model="")
    same = [
        f.name for f in dataclasses.fields(Job) if getattr(job, f.name) == getattr(default, f.name)
    ]
    assert same == [], "set these fields in the example so the round trip covers them"


def test_the_json_form_is_what_asdict_gives_and_reads_back_equal() -> None:
    job = a_job_with_every_field_set()
    assert json.loads(job.to_json()) == json.loads(json.dumps(dataclasses.asdict(job)))
    assert Job.from_json(job.to_json()) == job
