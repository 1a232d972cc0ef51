"""Google's own generated client (``google-ai-generativelanguage``, REST) drives the emulator.

The client is the judge of the emulator's fidelity: it builds the URLs, query parameters
(``$alt=json;enum-encoding=int`` included) and bodies the real service receives, parses the
answers strictly into its protobuf messages, and maps error envelopes to
``google.api_core.exceptions``. The emulator has no code for this client.

Over REST, ``google.api_core`` picks the exception class from the HTTP status alone, as it
would for the real service: 400 is ``BadRequest``, 403 ``Forbidden``, 429 ``TooManyRequests``
(the gRPC-named ``InvalidArgument``, ``PermissionDenied`` and ``ResourceExhausted`` are their
subclasses, raised by the gRPC transport only). The canonical status in the envelope is
checked as well.

The client is synchronous, so each call (anything that may reach the network, ``done()`` and
``result()`` included) runs in a thread while the emulator serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import google.oauth2.credentials
import httpx
import pytest
from google.ai import generativelanguage_v1beta as glm
from google.ai.generativelanguage_v1beta.services.model_service.transports.rest import (
    ModelServiceRestTransport,
)
from google.api_core import exceptions
from google.protobuf import field_mask_pb2

from emulator import EmulatorConfig, Grant, running_emulator
from tests.clocks import FakeClock
from tests.emulator.helpers import (
    BASE_MODEL,
    GRANTS,
    OWNER,
    READER,
    emulator_stats,
    inject_faults,
    token_form,
)

T = TypeVar("T")
QUOTA_PROJECT = "judge-quota-project"


@dataclass
class Emulator:
    """A running emulator, its clock and an httpx client for its test endpoints."""

    url: str
    clock: FakeClock
    http: httpx.AsyncClient

    async def client(
        self, grant: Grant = OWNER, quota_project: str | None = None
    ) -> glm.ModelServiceClient:
        """A ``ModelServiceClient`` over REST with an access token from ``grant``."""
        return await google_client(self.url, self.http, grant, quota_project)


async def google_client(
    url: str, http: httpx.AsyncClient, grant: Grant, quota_project: str | None = None
) -> glm.ModelServiceClient:
    """Google's client for the emulator at ``url``, holding a token exchanged at ``/token``."""
    response = await http.post("/token", data=token_form(grant))
    assert response.status_code == 200, response.text
    credentials = google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
        token=response.json()["access_token"], quota_project_id=quota_project
    )
    transport = ModelServiceRestTransport(
        host=url.removeprefix("http://"), credentials=credentials, url_scheme="http"
    )
    return glm.ModelServiceClient(transport=transport)


def rpc_status(error: exceptions.GoogleAPICallError) -> str:
    """The canonical status name in the error envelope the client received."""
    assert error.response is not None
    status: str = error.response.json()["error"]["status"]
    return status


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking client call off the event loop that serves the emulator."""
    return await asyncio.to_thread(function, *args, **kwargs)


def tuned_model(examples: int = 15, display_name: str = "number generator") -> glm.TunedModel:
    """15 examples, 5 epochs, batch 2: 38 steps."""
    pairs = [glm.TuningExample(text_input=str(n), output=str(n + 1)) for n in range(examples)]
    return glm.TunedModel(
        base_model=BASE_MODEL,
        display_name=display_name,
        tuning_task=glm.TuningTask(
            training_data=glm.Dataset(examples=glm.TuningExamples(examples=pairs)),
            hyperparameters=glm.Hyperparameters(epoch_count=5, batch_size=2),
        ),
    )


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[Emulator]:
    """An emulator on a fake clock (the test moves time before it asks for results)."""
    async with (
        running_emulator(EmulatorConfig(grants=GRANTS), clock) as url,
        httpx.AsyncClient(base_url=url, timeout=10.0) as http,
    ):
        yield Emulator(url, clock, http)


async def test_create_answers_an_operation_with_its_metadata(emulator: Emulator) -> None:
    client = await emulator.client()

    operation = await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id="x")

    metadata = operation.metadata
    assert isinstance(metadata, glm.CreateTunedModelMetadata)
    assert metadata.total_steps == 38
    assert metadata.tuned_model == "tunedModels/x"
    assert operation.operation.name.startswith("tunedModels/x/operations/")
    assert not await call(operation.done)  # polls the operation once


async def test_result_returns_the_active_model_with_snapshots(emulator: Emulator) -> None:
    client = await emulator.client()
    operation = await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id="x")
    emulator.clock.advance(19.0)  # 38 steps at 2 per second

    model = await call(operation.result, timeout=30)

    assert isinstance(model, glm.TunedModel)
    assert model.name == "tunedModels/x"
    assert model.state == glm.TunedModel.State.ACTIVE
    assert len(model.tuning_task.snapshots) == 38
    assert model.tuning_task.snapshots[-1].epoch == 5
    assert model.tuning_task.hyperparameters.batch_size == 2
    assert operation.metadata.completed_steps == 38


async def test_result_polls_a_running_operation_until_done() -> None:
    # Real time and fast training (38 steps in 0.19 s): result() polls with real sleeps.
    config = EmulatorConfig(grants=GRANTS, steps_per_second=200.0)
    async with (
        running_emulator(config, time.time) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        client = await google_client(url, http, OWNER)
        operation = await call(client.create_tuned_model, tuned_model=tuned_model())
        done_at_create = operation.operation.done
        model = await call(operation.result, timeout=30)
        polls = (await emulator_stats(http))["requests"]["GET operations.get"]

    assert not done_at_create
    assert polls >= 1  # result() had to poll to learn the outcome
    assert model.state == glm.TunedModel.State.ACTIVE
    assert model.name.startswith("tunedModels/number-generator-")
    assert operation.operation.done


async def test_get_reads_the_model_while_it_trains(emulator: Emulator) -> None:
    client = await emulator.client()
    await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id="x")
    emulator.clock.advance(5.0)

    model = await call(client.get_tuned_model, name="tunedModels/x")

    assert model.state == glm.TunedModel.State.CREATING
    assert model.display_name == "number generator"
    assert model.base_model == BASE_MODEL
    assert len(model.tuning_task.snapshots) == 10
    assert model.create_time == model.update_time


async def test_list_pages_through_all_models(emulator: Emulator) -> None:
    client = await emulator.client()
    for n in range(13):
        await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id=f"m{n:02d}")

    pager = await call(client.list_tuned_models, page_size=5)
    pages = await call(lambda: [[m.name for m in page.tuned_models] for page in pager.pages])

    assert [len(page) for page in pages] == [5, 5, 3]
    assert [name for page in pages for name in page] == [f"tunedModels/m{n:02d}" for n in range(13)]


async def test_list_iterates_every_model(emulator: Emulator) -> None:
    client = await emulator.client()
    for n in range(13):
        await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id=f"m{n:02d}")

    pager = await call(client.list_tuned_models, page_size=5)
    names = await call(lambda: [model.name for model in pager])

    assert len(names) == 13
    assert (await emulator_stats(emulator.http))["requests"]["GET tunedModels.list"] == 3


async def test_update_with_a_mask_changes_the_description(emulator: Emulator) -> None:
    client = await emulator.client()
    await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id="x")
    emulator.clock.advance(1.0)

    updated = await call(
        client.update_tuned_model,
        tuned_model=glm.TunedModel(name="tunedModels/x", description="now described"),
        update_mask=field_mask_pb2.FieldMask(paths=["description"]),
    )
    read = await call(client.get_tuned_model, name="tunedModels/x")

    assert updated.description == read.description == "now described"
    assert read.display_name == "number generator"
    assert read.update_time != read.create_time  # patched 1 s after creation


async def test_update_of_an_immutable_field_is_invalid_argument(emulator: Emulator) -> None:
    client = await emulator.client()
    await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id="x")

    with pytest.raises(exceptions.BadRequest) as caught:
        await call(
            client.update_tuned_model,
            tuned_model=glm.TunedModel(name="tunedModels/x", base_model="models/other"),
            update_mask=field_mask_pb2.FieldMask(paths=["base_model"]),
        )

    assert rpc_status(caught.value) == "INVALID_ARGUMENT"


async def test_deleted_model_is_not_found(emulator: Emulator) -> None:
    client = await emulator.client()
    await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id="x")

    await call(client.delete_tuned_model, name="tunedModels/x")

    with pytest.raises(exceptions.NotFound):
        await call(client.get_tuned_model, name="tunedModels/x")


async def test_create_without_the_tuning_scope_is_permission_denied(emulator: Emulator) -> None:
    client = await emulator.client(READER)

    with pytest.raises(exceptions.Forbidden) as caught:
        await call(client.create_tuned_model, tuned_model=tuned_model())

    assert rpc_status(caught.value) == "PERMISSION_DENIED"
    assert caught.value.reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


async def test_a_429_fault_is_resource_exhausted(emulator: Emulator) -> None:
    client = await emulator.client()
    await inject_faults(
        emulator.http, {"route": "tunedModels.create", "status": 429, "retry_delay_s": 26}
    )

    with pytest.raises(exceptions.TooManyRequests) as caught:
        await call(client.create_tuned_model, tuned_model=tuned_model())

    assert rpc_status(caught.value) == "RESOURCE_EXHAUSTED"
    assert (await emulator_stats(emulator.http))["models"] == 0
    # Over REST the client keeps the details as the JSON objects it received.
    delays = [d["retryDelay"] for d in caught.value.details if d["@type"].endswith(".RetryInfo")]
    assert delays == ["26s"]


async def test_a_503_fault_is_retried_by_the_client(emulator: Emulator) -> None:
    # UNAVAILABLE is the one code Google's client config retries for these methods.
    client = await emulator.client()
    await inject_faults(emulator.http, {"route": "tunedModels.get", "status": 503})
    await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id="x")

    model = await call(client.get_tuned_model, name="tunedModels/x")

    assert model.name == "tunedModels/x"
    assert (await emulator_stats(emulator.http))["requests"]["GET tunedModels.get"] == 2


async def test_list_operations_holds_the_create_operation(emulator: Emulator) -> None:
    client = await emulator.client()
    operation = await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id="x")
    emulator.clock.advance(19.0)

    listed = await call(client.list_operations, {"name": "tunedModels/x"})

    assert [op.name for op in listed.operations] == [operation.operation.name]
    assert listed.operations[0].done
    assert not listed.next_page_token


async def test_requests_carry_the_quota_project(emulator: Emulator) -> None:
    client = await emulator.client(quota_project=QUOTA_PROJECT)

    await call(client.create_tuned_model, tuned_model=tuned_model(), tuned_model_id="x")
    await call(client.get_tuned_model, name="tunedModels/x")

    stats = await emulator_stats(emulator.http)
    assert stats["user_projects"] == {QUOTA_PROJECT: 2}
