"""The Gemini API facade's ModelService and Operations, judged by Google's own clients.

`glm.ModelServiceAsyncClient` (google-ai-generativelanguage, unmodified, its grpc_asyncio
transport on a channel to the test's API, the platform token as `x-goog-api-key`) and
api-core's `OperationsAsyncClient` drive a tuned model's life as Google's tuning guide
does: create with inline examples, follow the operation until done (the client's own
`operation.result()`), get the model ACTIVE, list, update, delete; and meet the
refusals: a repeated id, bad examples under Google's field paths, another tenant's
model, a spent quota. The default sampling a create gives is kept and answered. A
cancelled operation ends with its error; ListModels answers each provider's tunable
models, and a Vertex AI tenant's old base model names map.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.ai import generativelanguage_v1beta as glm
from google.ai.generativelanguage_v1beta.services.model_service.transports.grpc_asyncio import (
    ModelServiceGrpcAsyncIOTransport,
)
from google.api_core import exceptions, operations_v1
from google.protobuf import field_mask_pb2
from google.rpc import code_pb2, error_details_pb2

from service.gemini_facade.names import job_id_for
from tests.conftest import SystemFactory
from tests.harness import BASE_MODEL, VERTEX_TENANT, State, System
from tuning.v1 import tuning_job_pb2

pytestmark = pytest.mark.timeout(60)
Client = glm.ModelServiceAsyncClient
TunedState = glm.TunedModel.State
EXAMPLES_PATH = "tuned_model.tuning_task.training_data.examples.examples"


def api_key(system: System, tenant: str = "team-a") -> list[tuple[str, str]]:
    return [("x-goog-api-key", system.tenants[tenant].token)]


def client_of(system: System, channel: grpc.aio.Channel | None = None) -> Client:
    """Google's generated client on the system's channel (closing it is the system's)."""
    return Client(transport=ModelServiceGrpcAsyncIOTransport(channel=channel or system.channel))


def operations_of(system: System) -> Any:
    """api-core's operations client (untyped) on the system's channel."""
    return operations_v1.OperationsAsyncClient(system.channel)  # type: ignore[no-untyped-call]


class ApiKey(grpc.aio.UnaryUnaryClientInterceptor):
    """Sends the API key on every call, as Google's clients do once given one: the
    operation future's own polls carry no metadata of the caller's."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), ("x-goog-api-key", self._token)]
        return await continuation(details._replace(metadata=metadata), request)


@pytest.fixture
async def keyed_channel(system: System) -> AsyncIterator[grpc.aio.Channel]:
    interceptor = ApiKey(system.tenants["team-a"].token)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{system.api.port}", interceptors=[interceptor])
    yield channel
    await channel.close()


def model(count: int = 20, **fields: Any) -> glm.TunedModel:
    """A valid tuned model: `count` examples, 2 epochs of batch 4."""
    examples = [glm.TuningExample(text_input=str(n), output=str(n + 1)) for n in range(count)]
    task = glm.TuningTask(
        training_data=glm.Dataset(examples=glm.TuningExamples(examples=examples)),
        hyperparameters=glm.Hyperparameters(epoch_count=2, batch_size=4, learning_rate=0.001),
    )
    spec: dict[str, Any] = {"base_model": BASE_MODEL, "display_name": "numbers", **fields}
    return glm.TunedModel(tuning_task=task, **spec)


async def create(
    system: System, tuned: glm.TunedModel, model_id: str | None = None, tenant: str = "team-a"
) -> Any:
    """CreateTunedModel; the client's operation future."""
    request = glm.CreateTunedModelRequest(tuned_model=tuned, tuned_model_id=model_id)
    return await client_of(system).create_tuned_model(
        request, metadata=api_key(system, tenant), timeout=10
    )


async def refused(call: Any) -> exceptions.GoogleAPICallError:
    with pytest.raises(exceptions.GoogleAPICallError) as caught:
        await call
    return caught.value


def violations(error: exceptions.GoogleAPICallError) -> dict[str, str]:
    bad = [d for d in error.details if isinstance(d, error_details_pb2.BadRequest)]
    assert bad, f"no BadRequest in {error!r}"
    return {v.field: v.description for v in bad[0].field_violations}


def job_id(model_id: str, tenant: str = "team-a") -> str:
    found = job_id_for(tenant, model_id)
    assert found is not None
    return found


def job_name(model_id: str, tenant: str = "team-a") -> str:
    return f"tuningJobs/{job_id(model_id, tenant)}"


async def test_a_tuned_model_is_created_trained_and_active(
    system: System, keyed_channel: grpc.aio.Channel
) -> None:
    client = client_of(system, keyed_channel)
    request = glm.CreateTunedModelRequest(tuned_model=model(), tuned_model_id="numbers-one")
    operation: Any = await client.create_tuned_model(request, timeout=10)
    assert operation.operation.name == "tunedModels/numbers-one/operations/create"
    assert not operation.operation.done
    assert operation.metadata.tuned_model == "tunedModels/numbers-one"
    assert operation.metadata.total_steps == 10  # estimated: 20 examples, 2 epochs of 4

    await system.finish_training(job_name("numbers-one"))
    done = await operation.result(timeout=10)  # the client's own polls (GetOperation)
    assert done.name == "tunedModels/numbers-one"
    assert done.state == TunedState.ACTIVE
    meta = operation.metadata
    assert meta.tuned_model == "tunedModels/numbers-one"
    assert meta.total_steps == 10 and meta.completed_steps == 10
    assert meta.completed_percent == pytest.approx(100)

    got = await client.get_tuned_model(name="tunedModels/numbers-one", timeout=10)
    assert got.state == TunedState.ACTIVE
    assert got.base_model == BASE_MODEL and got.display_name == "numbers"
    task = got.tuning_task
    assert task.hyperparameters.epoch_count == 2 and task.hyperparameters.batch_size == 4
    assert task.hyperparameters.learning_rate == pytest.approx(0.001)
    assert len(task.snapshots) == 10 and task.snapshots[-1].step == 10
    assert task.start_time and task.complete_time
    assert not task.training_data.examples.examples  # never answered back


async def test_a_repeated_tuned_model_id_is_already_exists(api_only: System) -> None:
    await create(api_only, model(), "twice")
    for again in (model(), model(display_name="other")):
        error = await refused(create(api_only, again, "twice"))
        assert isinstance(error, exceptions.AlreadyExists)
        assert "tunedModels/twice" in error.message
    listed = await client_of(api_only).list_tuned_models(metadata=api_key(api_only))
    assert [m.name async for m in listed] == ["tunedModels/twice"]


async def test_an_id_is_made_from_the_display_name_when_none_is_given(api_only: System) -> None:
    operation = await create(api_only, model(display_name="My Numbers, v2!"))
    name = operation.operation.name.removesuffix("/operations/create")
    assert (
        name.startswith("tunedModels/my-numbers-v2-")
        and len(name) == len("tunedModels/my-numbers-v2-") + 6
    )
    got = await client_of(api_only).get_tuned_model(name=name, metadata=api_key(api_only))
    assert got.state == TunedState.CREATING


async def test_listing_pages_and_filters(make_system: SystemFactory) -> None:
    async with make_system(with_worker=False) as system:
        for n in range(7):
            display = f"apple {n}" if n % 2 else f"pear {n}"
            await create(system, model(display_name=display), f"fruit-{n}")
        legacy = await system.create(display_name="apple legacy")  # through tuning.v1
        client = client_of(system)

        async def page(**fields: Any) -> Any:
            """The pager's first page: its `tuned_models` and `next_page_token`."""
            request = glm.ListTunedModelsRequest(**fields)
            return await client.list_tuned_models(request, metadata=api_key(system))

        names: list[str] = []
        token, pages = "", 0
        while True:
            answer = await page(page_size=3, page_token=token)
            names += [m.name for m in answer.tuned_models]
            pages += 1
            token = answer.next_page_token
            if not token:
                break
        assert pages == 3
        assert names == [
            "tunedModels/" + legacy.name.removeprefix("tuningJobs/"),
            *(f"tunedModels/fruit-{n}" for n in reversed(range(7))),
        ]

        apples: list[str] = []
        token = ""
        while True:
            answer = await page(page_size=1, page_token=token, filter="APPLE owner:me")
            apples += [m.display_name for m in answer.tuned_models]
            if not (token := answer.next_page_token):
                break
        assert apples == ["apple legacy", "apple 5", "apple 3", "apple 1"]
        assert not (await page(filter='"pear 4" readers:everyone')).tuned_models
        assert [m.display_name for m in (await page(filter='"pear 4"')).tuned_models] == ["pear 4"]

        error = await refused(page(filter="x" * 5000))
        assert isinstance(error, exceptions.InvalidArgument) and "filter" in violations(error)
        first = await page(page_size=1)
        error = await refused(page(page_size=1, page_token=first.next_page_token, filter="apple"))
        assert "page_token" in violations(error)  # a token is good for its own filter only


async def test_another_tenants_model_is_not_found(api_only: System) -> None:
    await create(api_only, model(), "mine")
    client, key_b = client_of(api_only), api_key(api_only, "team-b")
    for call in (
        client.get_tuned_model(name="tunedModels/mine", metadata=key_b),
        client.delete_tuned_model(name="tunedModels/mine", metadata=key_b),
        operations_of(api_only).get_operation("tunedModels/mine/operations/create", metadata=key_b),
        client.get_tuned_model(name="tunedModels/" + job_id("mine"), metadata=key_b),
    ):
        error = await refused(call)
        assert isinstance(error, exceptions.NotFound), error
        assert "tuningJobs/" not in error.message
    still = await client.get_tuned_model(name="tunedModels/mine", metadata=api_key(api_only))
    assert still.name == "tunedModels/mine"
    for bad in ("tunedModels/Not_An_Id", "models/mine", "tunedModels/" + "a" * 200):
        error = await refused(client.get_tuned_model(name=bad, metadata=api_key(api_only)))
        assert isinstance(error, exceptions.InvalidArgument) and "name" in violations(error)


async def test_bad_requests_name_googles_fields(api_only: System) -> None:
    bad = model()
    bad.tuning_task.training_data.examples.examples[3].output = " "
    bad.tuning_task.hyperparameters.epoch_count = 0
    error = await refused(create(api_only, bad, "bad-one"))
    assert isinstance(error, exceptions.InvalidArgument)
    found = violations(error)
    assert f"{EXAMPLES_PATH}[3].output" in found, found
    assert "tuned_model.tuning_task.hyperparameters.epoch_count" in found, found
    assert "tuning_job" not in error.message and "tuned_model." in error.message

    error = await refused(create(api_only, model(count=3), "few"))
    assert EXAMPLES_PATH in violations(error)
    error = await refused(create(api_only, model(display_name="d" * 41), "long"))
    assert "tuned_model.display_name" in violations(error)
    for bad_id in ("Upper", "-dash", "a" * 41, "j" + "a" * 19):
        error = await refused(create(api_only, model(), bad_id))
        assert "tuned_model_id" in violations(error), bad_id
    error = await refused(create(api_only, model(base_model="models/unknown")))
    assert "tuned_model.base_model" in violations(error)
    listed = await client_of(api_only).list_tuned_models(metadata=api_key(api_only))
    assert [m.name async for m in listed] == []


async def test_the_default_sampling_given_at_create_is_kept_and_answered(
    api_only: System,
) -> None:
    await create(api_only, model(temperature=0.25, top_k=8), "sampled")
    await create(api_only, model(), "unsampled")
    client = client_of(api_only)

    got = await client.get_tuned_model(name="tunedModels/sampled", metadata=api_key(api_only))
    assert got.temperature == pytest.approx(0.25) and got.top_k == 8
    assert not glm.TunedModel.pb(got).HasField("top_p")  # not given: the upstream's own
    plain = await client.get_tuned_model(name="tunedModels/unsampled", metadata=api_key(api_only))
    assert not any(glm.TunedModel.pb(plain).HasField(f) for f in ("temperature", "top_p", "top_k"))

    error = await refused(create(api_only, model(temperature=2.5, top_k=0), "too-hot"))
    assert isinstance(error, exceptions.InvalidArgument)
    assert {"tuned_model.temperature", "tuned_model.top_k"} <= set(violations(error))
    listed = await client.list_tuned_models(metadata=api_key(api_only))
    assert sorted([m.name async for m in listed]) == [
        "tunedModels/sampled",
        "tunedModels/unsampled",
    ]


async def test_a_large_create_is_translated_off_the_event_loop(
    make_system: SystemFactory,
) -> None:
    async with make_system(with_worker=False, grpc_small_request_max_bytes=200) as system:
        operation = await create(system, model(), "large")
        assert operation.metadata.total_steps == 10  # all 20 examples arrived
        bad = model()
        bad.tuning_task.training_data.examples.examples[7].text_input = ""
        error = await refused(create(system, bad, "large-bad"))
        assert f"{EXAMPLES_PATH}[7].text_input" in violations(error)


@pytest.mark.parametrize("small_request_bytes", [200, 1_000_000], ids=["large", "small"])
async def test_a_spent_create_quota_is_resource_exhausted_with_retry_info(
    make_system: SystemFactory, small_request_bytes: int
) -> None:
    async with make_system(
        with_worker=False,
        tenant_creates_per_minute=0.5,
        tenant_create_burst=1,
        grpc_small_request_max_bytes=small_request_bytes,
    ) as system:
        await create(system, model(), "first")
        error = await refused(create(system, model(), "second"))
        assert isinstance(error, exceptions.ResourceExhausted)
        retry = [d for d in error.details if isinstance(d, error_details_pb2.RetryInfo)]
        assert retry and retry[0].retry_delay.seconds > 0
        again = await refused(create(system, model(), "first"))  # a repeat costs nothing
        assert isinstance(again, exceptions.AlreadyExists)


async def test_update_changes_what_the_mask_names_and_delete_removes(api_only: System) -> None:
    await create(api_only, model(description="first words"), "editable")
    client, key = client_of(api_only), api_key(api_only)
    changed = await client.update_tuned_model(
        tuned_model=glm.TunedModel(name="tunedModels/editable", display_name="renamed"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        metadata=key,
    )
    assert (changed.display_name, changed.description) == ("renamed", "first words")
    got = await client.get_tuned_model(name="tunedModels/editable", metadata=key)
    assert got.display_name == "renamed"
    changed = await client.update_tuned_model(
        tuned_model=glm.TunedModel(name="tunedModels/editable", description="new words"),
        update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        metadata=key,
    )
    assert (changed.display_name, changed.description) == ("renamed", "new words")
    job = await api_only.get(job_name("editable"))
    assert (job.display_name, job.description) == ("renamed", "new words")

    error = await refused(
        client.update_tuned_model(
            tuned_model=glm.TunedModel(name="tunedModels/editable", base_model="models/x"),
            update_mask=field_mask_pb2.FieldMask(paths=["base_model"]),
            metadata=key,
        )
    )
    assert "update_mask" in violations(error)
    error = await refused(
        client.update_tuned_model(
            tuned_model=glm.TunedModel(name="tunedModels/editable", display_name="n" * 41),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            metadata=key,
        )
    )
    assert "tuned_model.display_name" in violations(error)

    await client.delete_tuned_model(name="tunedModels/editable", metadata=key)
    error = await refused(client.get_tuned_model(name="tunedModels/editable", metadata=key))
    assert isinstance(error, exceptions.NotFound)
    assert [m async for m in await client.list_tuned_models(metadata=key)] == []
    error = await refused(client.delete_tuned_model(name="tunedModels/editable", metadata=key))
    assert isinstance(error, exceptions.NotFound) and "tunedModels/editable" in error.message
    error = await refused(create(api_only, model(), "editable"))  # an id stays taken
    assert isinstance(error, exceptions.AlreadyExists)


async def test_cancel_operation_cancels_the_job(api_only: System) -> None:
    await create(api_only, model(), "to-cancel")
    operations, key = operations_of(api_only), api_key(api_only)
    name = "tunedModels/to-cancel/operations/create"
    await operations.cancel_operation(name, metadata=key)

    job = await api_only.get(job_name("to-cancel"))
    assert job.state == State.CANCELLED  # QUEUED: cancelled at once
    done = await operations.get_operation(name, metadata=key)
    assert done.done and done.error.code == code_pb2.CANCELLED
    assert not done.HasField("response")
    got = await client_of(api_only).get_tuned_model(name="tunedModels/to-cancel", metadata=key)
    assert got.state == TunedState.FAILED

    listed = await operations.list_operations("tunedModels/to-cancel", "", metadata=key)
    assert [o.name async for o in listed] == [name]
    await create(api_only, model(), "second")
    listed = await operations.list_operations("", "", metadata=key)
    assert [o.name async for o in listed] == ["tunedModels/second/operations/create", name]
    filtered = await operations.list_operations("", "done = true", metadata=key)
    error = await refused(anext(aiter(filtered)))  # the pager calls as it is read
    assert isinstance(error, exceptions.InvalidArgument) and "filter" in violations(error)
    error = await refused(operations.get_operation("tunedModels/to-cancel/x", metadata=key))
    assert isinstance(error, exceptions.InvalidArgument)


async def test_list_models_answers_each_providers_tunable_models(api_only: System) -> None:
    client = client_of(api_only)
    gemini = [m async for m in await client.list_models(metadata=api_key(api_only))]
    assert [m.name for m in gemini] == list(api_only.settings.base_models)
    for found in gemini:
        assert {"createTunedModel", "generateContent"} <= set(found.supported_generation_methods)

    vertex_key = api_key(api_only, VERTEX_TENANT)
    vertex = [m async for m in await client.list_models(page_size=2, metadata=vertex_key)]
    wanted = [f"models/{m}" for m in api_only.settings.vertex_base_models]
    assert [m.name for m in vertex] == wanted  # every page, two at a time
    got = await client.get_model(name=wanted[0], metadata=vertex_key)
    assert got.name == wanted[0] and "createTunedModel" in got.supported_generation_methods
    error = await refused(client.get_model(name=wanted[0], metadata=api_key(api_only)))
    assert isinstance(error, exceptions.NotFound)  # not a Gemini API tenant's model


async def test_an_old_base_model_name_maps_on_a_vertex_tenant(api_only: System) -> None:
    hyper = glm.Hyperparameters(epoch_count=2)
    task = model().tuning_task
    task.hyperparameters = hyper
    old = glm.TunedModel(base_model=BASE_MODEL, display_name="mapped", tuning_task=task)
    await create(api_only, old, "mapped", tenant=VERTEX_TENANT)
    job = await api_only.get(job_name("mapped", VERTEX_TENANT), tenant=VERTEX_TENANT)
    assert job.base_model == "gemini-2.5-flash"
    assert job.provider == tuning_job_pb2.TuningJob.VERTEX_AI
    got = await client_of(api_only).get_tuned_model(
        name="tunedModels/mapped", metadata=api_key(api_only, VERTEX_TENANT)
    )
    assert got.base_model == "models/gemini-2.5-flash"

    unknown = glm.TunedModel(base_model="models/gemini-9", tuning_task=task)
    error = await refused(create(api_only, unknown, "unknown", tenant=VERTEX_TENANT))
    assert isinstance(error, exceptions.InvalidArgument)
    why = violations(error)["tuned_model.base_model"]
    assert BASE_MODEL in why and "models/gemini-2.5-flash" in why
