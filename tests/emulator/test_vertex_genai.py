"""Google's ``google-genai`` SDK in Vertex mode drives the emulator's ``tuningJobs`` (v1beta1).

The SDK is the judge: it builds the paths and bodies the real service receives and parses the
answers into its typed ``TuningJob``. Its client is synchronous, so each call runs in a thread
while the emulator serves on the test's event loop. ``tunings.tune`` warns, once, that it is
experimental; that warning is expected here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import google.oauth2.credentials
import pytest
from google import genai
from google.genai import types

from tests.clocks import FakeClock
from tests.emulator.test_vertex_jobs import (
    PENDING_S,
    PROJECT_NUMBER,
    RUN_S,
    TRAINING_URI,
    VertexEmulator,
    vertex_emulator,
)

T = TypeVar("T")
pytestmark = pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning")


@pytest.fixture
async def vertex(clock: FakeClock) -> AsyncIterator[VertexEmulator]:
    """An emulator with a 10-example training file at ``TRAINING_URI``."""
    async with vertex_emulator(clock) as emulator:
        emulator.put_file()
        yield emulator


async def sdk_client(vertex: VertexEmulator) -> genai.Client:
    """google-genai in Vertex mode, with an access token from the emulator's ``/token``."""
    token = (await vertex.headers())["Authorization"].removeprefix("Bearer ")
    credentials = google.oauth2.credentials.Credentials(token=token)  # type: ignore[no-untyped-call]
    return genai.Client(
        vertexai=True,
        project="my-project",
        location="us-central1",
        credentials=credentials,
        http_options=types.HttpOptions(base_url=vertex.url),
    )


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking SDK call off the event loop that serves the emulator."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def tune(client: genai.Client, **config: Any) -> types.TuningJob:
    """``tunings.tune`` on gemini-2.5-flash with 3 epochs and the platform's label."""
    settings: dict[str, Any] = {
        "epoch_count": 3,
        "learning_rate_multiplier": 0.5,
        "adapter_size": types.AdapterSize.ADAPTER_SIZE_FOUR,
        "tuned_model_display_name": "numbers",
        "labels": {"platform-job": "job-1"},
    }
    return await call(
        client.tunings.tune,
        base_model="gemini-2.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=TRAINING_URI),
        config=types.CreateTuningJobConfig(**(settings | config)),
    )


async def test_tune_answers_a_pending_job(vertex: VertexEmulator) -> None:
    client = await sdk_client(vertex)

    job = await tune(client)

    assert job.name is not None
    assert job.name.startswith(f"projects/{PROJECT_NUMBER}/locations/us-central1/tuningJobs/")
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.labels == {"platform-job": "job-1"}
    assert job.tuned_model_display_name == "numbers"
    assert job.create_time is not None and job.create_time.tzinfo is not None
    assert job.supervised_tuning_spec is not None
    hyper = job.supervised_tuning_spec.hyper_parameters
    assert hyper is not None
    assert hyper.epoch_count == 3
    assert hyper.learning_rate_multiplier == 0.5
    assert hyper.adapter_size == types.AdapterSize.ADAPTER_SIZE_FOUR


async def test_get_parses_a_succeeded_job(vertex: VertexEmulator) -> None:
    client = await sdk_client(vertex)
    name = (await tune(client)).name
    vertex.clock.advance(PENDING_S)
    running = await call(client.tunings.get, name=name)
    vertex.clock.advance(RUN_S)

    job = await call(client.tunings.get, name=name)

    assert running.state == types.JobState.JOB_STATE_RUNNING
    assert running.tuning_job_state == types.TuningJobState.TUNING_JOB_STATE_TUNING
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.has_ended and job.has_succeeded
    assert job.tuned_model is not None and job.tuned_model.endpoint is not None
    assert "/endpoints/" in job.tuned_model.endpoint
    assert job.tuned_model.model is not None and job.tuned_model.model.endswith("@1")
    checkpoints = job.tuned_model.checkpoints or []
    assert [(c.epoch, c.step) for c in checkpoints] == [(1, 2), (2, 4), (3, 6)]
    assert job.tuning_data_stats is not None
    stats = job.tuning_data_stats.supervised_tuning_data_stats
    assert stats is not None
    assert stats.tuning_dataset_example_count == 10
    assert stats.total_billable_token_count == 40
    assert stats.tuning_step_count == 6


async def test_list_finds_the_job_by_its_label(vertex: VertexEmulator) -> None:
    client = await sdk_client(vertex)
    await tune(client, labels={"platform-job": "job-1"})
    await tune(client, labels={"platform-job": "job-2"})

    pager = await call(
        client.tunings.list,
        config=types.ListTuningJobsConfig(filter='labels.platform-job="job-2"', page_size=1),
    )
    found: list[types.TuningJob] = await call(list, pager)

    assert [job.labels for job in found] == [{"platform-job": "job-2"}]


async def test_list_pages_through_every_job(vertex: VertexEmulator) -> None:
    client = await sdk_client(vertex)
    for _ in range(3):
        await tune(client)

    pager = await call(client.tunings.list, config=types.ListTuningJobsConfig(page_size=2))
    found: list[types.TuningJob] = await call(list, pager)

    assert len(found) == 3


async def test_cancel_ends_the_job_cancelled(vertex: VertexEmulator) -> None:
    client = await sdk_client(vertex)
    name = (await tune(client)).name
    assert name is not None

    await call(client.tunings.cancel, name=name)
    cancelling = await call(client.tunings.get, name=name)
    vertex.clock.advance(1.0)
    job = await call(client.tunings.get, name=name)

    assert cancelling.state == types.JobState.JOB_STATE_CANCELLING
    assert job.state == types.JobState.JOB_STATE_CANCELLED
    assert job.error is not None and job.error.code == 1


async def test_generate_content_on_the_tuned_endpoint(vertex: VertexEmulator) -> None:
    client = await sdk_client(vertex)
    name = (await tune(client)).name
    vertex.clock.advance(PENDING_S + RUN_S)
    job = await call(client.tunings.get, name=name)
    assert job.tuned_model is not None and job.tuned_model.endpoint is not None

    answer = await call(
        client.models.generate_content, model=job.tuned_model.endpoint, contents="seven"
    )

    assert answer.text is not None and "You said: seven" in answer.text
