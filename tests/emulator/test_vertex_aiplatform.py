"""Google's generated ``google.cloud.aiplatform_v1`` clients over REST drive the emulator.

``GenAiTuningServiceClient`` (create, get, list with a label filter and paging, cancel),
``ModelServiceClient`` and ``EndpointServiceClient`` (get, undeploy, delete) build the v1
requests the real service receives, ``$alt=json;enum-encoding=int`` included, and parse the
answers strictly into their protobuf messages. The clients are synchronous, so each call runs
in a thread while the emulator serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import google.oauth2.credentials
import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1 as aip
from google.cloud.aiplatform_v1.services.endpoint_service.transports.rest import (
    EndpointServiceRestTransport,
)
from google.cloud.aiplatform_v1.services.gen_ai_tuning_service.transports.rest import (
    GenAiTuningServiceRestTransport,
)
from google.cloud.aiplatform_v1.services.model_service.transports.rest import (
    ModelServiceRestTransport,
)

from tests.clocks import FakeClock
from tests.emulator.test_vertex_jobs import (
    PARENT,
    PENDING_S,
    PROJECT_NUMBER,
    RUN_S,
    TRAINING_URI,
    VertexEmulator,
    vertex_emulator,
)

T = TypeVar("T")
Transport = (
    type[GenAiTuningServiceRestTransport]
    | type[ModelServiceRestTransport]
    | type[EndpointServiceRestTransport]
)


@pytest.fixture
async def vertex(clock: FakeClock) -> AsyncIterator[VertexEmulator]:
    """An emulator with a 10-example training file at ``TRAINING_URI``."""
    async with vertex_emulator(clock) as emulator:
        emulator.put_file()
        yield emulator


async def transport(vertex: VertexEmulator, kind: Transport) -> Any:
    """A REST transport of ``kind`` over plain http, with a token from the emulator."""
    token = (await vertex.headers())["Authorization"].removeprefix("Bearer ")
    credentials = google.oauth2.credentials.Credentials(token=token)  # type: ignore[no-untyped-call]
    return kind(host=vertex.url.removeprefix("http://"), credentials=credentials, url_scheme="http")


async def tuning_client(vertex: VertexEmulator) -> aip.GenAiTuningServiceClient:
    """``GenAiTuningServiceClient`` for the emulator."""
    return aip.GenAiTuningServiceClient(
        transport=await transport(vertex, GenAiTuningServiceRestTransport)
    )


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking client call off the event loop that serves the emulator."""
    return await asyncio.to_thread(function, *args, **kwargs)


def tuning_job(run: str = "run-1") -> aip.TuningJob:
    """gemini-2.5-flash, 3 epochs, adapter size 4, labelled with the platform's run."""
    hyper = aip.SupervisedHyperParameters(
        epoch_count=3,
        learning_rate_multiplier=1.0,
        adapter_size=aip.SupervisedHyperParameters.AdapterSize.ADAPTER_SIZE_FOUR,
    )
    return aip.TuningJob(
        base_model="gemini-2.5-flash",
        supervised_tuning_spec=aip.SupervisedTuningSpec(
            training_dataset_uri=TRAINING_URI, hyper_parameters=hyper
        ),
        tuned_model_display_name="numbers",
        labels={"platform-run": run},
    )


async def finished_job(vertex: VertexEmulator) -> aip.TuningJob:
    """A job created and run to success."""
    client = await tuning_client(vertex)
    created = await call(client.create_tuning_job, parent=PARENT, tuning_job=tuning_job())
    vertex.clock.advance(PENDING_S + RUN_S)
    return await call(client.get_tuning_job, name=created.name)


async def test_create_and_get(vertex: VertexEmulator) -> None:
    client = await tuning_client(vertex)

    created = await call(client.create_tuning_job, parent=PARENT, tuning_job=tuning_job())
    vertex.clock.advance(PENDING_S)
    running = await call(client.get_tuning_job, name=created.name)

    assert created.name.startswith(f"projects/{PROJECT_NUMBER}/locations/us-central1/")
    assert created.state == aip.JobState.JOB_STATE_PENDING
    assert created.supervised_tuning_spec.hyper_parameters.epoch_count == 3
    assert running.state == aip.JobState.JOB_STATE_RUNNING
    assert aip.TuningJob.pb(running).start_time.ToJsonString() == "2026-11-21T13:40:05Z"
    stats = running.tuning_data_stats.supervised_tuning_data_stats
    assert stats.tuning_dataset_example_count == 10
    assert stats.tuning_step_count == 6


async def test_a_succeeded_job_names_its_model_endpoint_and_checkpoints(
    vertex: VertexEmulator,
) -> None:
    job = await finished_job(vertex)

    assert job.state == aip.JobState.JOB_STATE_SUCCEEDED
    assert job.tuned_model.model.endswith("@1")
    assert [c.epoch for c in job.tuned_model.checkpoints] == [1, 2, 3]
    assert job.tuned_model.checkpoints[-1].endpoint == job.tuned_model.endpoint


async def test_list_with_a_label_filter_and_paging(vertex: VertexEmulator) -> None:
    client = await tuning_client(vertex)
    for run in ("run-1", "run-2", "run-1", "run-1"):
        await call(client.create_tuning_job, parent=PARENT, tuning_job=tuning_job(run))

    request = aip.ListTuningJobsRequest(
        parent=PARENT, filter='labels.platform-run="run-1"', page_size=2
    )
    pager = await call(client.list_tuning_jobs, request=request)
    jobs: list[aip.TuningJob] = await call(list, pager)

    assert len(jobs) == 3
    assert {job.labels["platform-run"] for job in jobs} == {"run-1"}


async def test_cancel(vertex: VertexEmulator) -> None:
    client = await tuning_client(vertex)
    created = await call(client.create_tuning_job, parent=PARENT, tuning_job=tuning_job())

    await call(client.cancel_tuning_job, name=created.name)
    vertex.clock.advance(1.0)
    job = await call(client.get_tuning_job, name=created.name)

    assert job.state == aip.JobState.JOB_STATE_CANCELLED
    assert job.error.code == 1


async def test_cancelling_a_finished_job_is_a_failed_precondition(
    vertex: VertexEmulator,
) -> None:
    job = await finished_job(vertex)
    client = await tuning_client(vertex)

    with pytest.raises(exceptions.BadRequest) as raised:
        await call(client.cancel_tuning_job, name=job.name)

    assert raised.value.response is not None
    assert raised.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"


async def test_clean_up_in_vertex_order(vertex: VertexEmulator) -> None:
    job = await finished_job(vertex)
    models = aip.ModelServiceClient(transport=await transport(vertex, ModelServiceRestTransport))
    endpoints = aip.EndpointServiceClient(
        transport=await transport(vertex, EndpointServiceRestTransport)
    )
    model = await call(models.get_model, name=job.tuned_model.model)
    assert len(model.deployed_models) == 3

    with pytest.raises(exceptions.BadRequest):
        await call(models.delete_model, name=model.name)
    for checkpoint in job.tuned_model.checkpoints:
        endpoint = await call(endpoints.get_endpoint, name=checkpoint.endpoint)
        with pytest.raises(exceptions.BadRequest):
            await call(endpoints.delete_endpoint, name=endpoint.name)
        undeploy = await call(
            endpoints.undeploy_model,
            endpoint=endpoint.name,
            deployed_model_id=endpoint.deployed_models[0].id,
        )
        await call(undeploy.result, timeout=10)
        deletion = await call(endpoints.delete_endpoint, name=endpoint.name)
        await call(deletion.result, timeout=10)
    await call((await call(models.delete_model, name=model.name)).result, timeout=10)

    with pytest.raises(exceptions.NotFound):
        await call(models.get_model, name=model.name)
    with pytest.raises(exceptions.NotFound):
        await call(endpoints.get_endpoint, name=job.tuned_model.endpoint)
