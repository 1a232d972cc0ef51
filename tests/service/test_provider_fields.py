"""What a job may ask for depends on its tenant's provider: team-a tunes on the Gemini
API, team-v on Vertex AI; each is refused, naming the field and the provider, what its
provider cannot do, and a job keeps (and answers) the provider it was created for."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from core.redis.keys import Keys
from tests.conftest import SystemFactory
from tests.harness import VERTEX_TENANT, System, job_spec
from tests.rpc_errors import violations
from tests.service.test_datasets import jsonl
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

Hyper = tuning_job_pb2.Hyperparameters
TuningJob = tuning_job_pb2.TuningJob
VERTEX_MODEL = "gemini-2.5-flash"


async def create(
    system: System, tenant: str, *, validate_only: bool = False, **fields: Any
) -> TuningJob:
    request = tuning_service_pb2.CreateTuningJobRequest(
        tuning_job=job_spec(**fields), validate_only=validate_only
    )
    return await system.stub.CreateTuningJob(request, metadata=system.auth(tenant))


async def vertex_create(system: System, *, validate_only: bool = True, **fields: Any) -> TuningJob:
    """A valid Vertex AI job (no batch size, a Vertex base model) with `fields` changed."""
    fields = {"base_model": VERTEX_MODEL, "hyperparameters": Hyper(epoch_count=2), **fields}
    return await create(system, VERTEX_TENANT, validate_only=validate_only, **fields)


async def refused(system: System, tenant: str, **fields: Any) -> dict[str, str]:
    """The field violations of a validate_only create that must fail (nothing is stored)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if tenant == VERTEX_TENANT:
            await vertex_create(system, **fields)
        else:
            await create(system, tenant, validate_only=True, **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return violations(caught.value)


@pytest.mark.parametrize(
    ("hyper", "field"),
    [
        (Hyper(epoch_count=2, learning_rate=0.001), "learning_rate"),
        (Hyper(epoch_count=2, batch_size=4), "batch_size"),
    ],
)
async def test_vertex_refuses_what_its_v1_api_has_not(
    api_only: System, hyper: tuning_job_pb2.Hyperparameters, field: str
) -> None:
    found = await refused(api_only, VERTEX_TENANT, hyperparameters=hyper)
    path = f"tuning_job.hyperparameters.{field}"
    assert list(found) == [path]
    assert "not accepted by the vertex provider" in found[path]
    assert "Vertex AI tuningJobs v1 has no" in found[path]


async def test_a_refused_field_is_named_once_even_out_of_bounds(api_only: System) -> None:
    found = await refused(api_only, VERTEX_TENANT, hyperparameters=Hyper(batch_size=-1))
    assert list(found) == ["tuning_job.hyperparameters.batch_size"]
    assert "vertex" in found["tuning_job.hyperparameters.batch_size"]


async def test_the_gemini_api_refuses_every_vertex_only_field(api_only: System) -> None:
    dataset = await api_only.upload(jsonl(30))
    found = await refused(
        api_only,
        "team-a",
        hyperparameters=Hyper(epoch_count=2, batch_size=4, adapter_size=4),
        system_instruction="Answer with a number.",
        validation_dataset=dataset.name,
        export_last_checkpoint_only=True,
    )
    assert set(found) == {
        "tuning_job.hyperparameters.adapter_size",
        "tuning_job.system_instruction",
        "tuning_job.validation_dataset",
        "tuning_job.export_last_checkpoint_only",
    }
    assert all("not accepted by the gemini_api provider" in d for d in found.values())


async def test_each_provider_tunes_only_its_own_base_models(api_only: System) -> None:
    on_vertex = await refused(api_only, VERTEX_TENANT, base_model="models/gemini-1.0-pro-001")
    assert "vertex provider" in on_vertex["tuning_job.base_model"]
    assert "gemini-2.5-flash, gemini-2.5-flash-lite" in on_vertex["tuning_job.base_model"]
    on_gemini = await refused(api_only, "team-a", base_model=VERTEX_MODEL)
    assert "gemini_api provider" in on_gemini["tuning_job.base_model"]
    assert "models/gemini-1.5-flash-001-tuning" in on_gemini["tuning_job.base_model"]


async def test_a_vertex_job_keeps_and_answers_every_input(api_only: System) -> None:
    validation = await api_only.upload(jsonl(25), tenant=VERTEX_TENANT)
    instruction = "Answer with the next number.\n\tDigits only."
    created = await vertex_create(
        api_only,
        validate_only=False,
        hyperparameters=Hyper(epoch_count=3, learning_rate_multiplier=2.0, adapter_size=4),
        system_instruction=instruction,
        validation_dataset=validation.name,
        export_last_checkpoint_only=True,
    )
    got = await api_only.get(created.name, VERTEX_TENANT)
    assert got == created
    assert got.provider == TuningJob.Provider.VERTEX_AI
    assert got.base_model == VERTEX_MODEL
    assert got.hyperparameters == Hyper(epoch_count=3, learning_rate_multiplier=2.0, adapter_size=4)
    assert got.system_instruction == instruction
    assert got.validation_dataset == validation.name
    assert got.export_last_checkpoint_only
    # Outputs the worker fills in from Vertex AI later: empty until then.
    assert not got.HasField("tuning_data_stats")
    assert (list(got.checkpoints), got.tuned_model_endpoint) == ([], "")
    stored = await api_only.store.get(VERTEX_TENANT, created.name.removeprefix("tuningJobs/"))
    assert stored is not None and stored.provider.vertex is not None
    assert stored.provider.vertex.project == "team-v-project"


async def test_a_gemini_api_job_answers_its_provider(api_only: System) -> None:
    created = await api_only.create()
    got = await api_only.get(created.name)
    assert got.provider == TuningJob.Provider.GEMINI_API
    assert not got.HasField("tuning_data_stats") and not got.system_instruction


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"hyperparameters": Hyper(adapter_size=3)}, "hyperparameters.adapter_size", "1, 2, 4"),
        ({"system_instruction": "x" * 10_001}, "system_instruction", "at most 10000"),
        ({"system_instruction": "a\x00b"}, "system_instruction", "control characters"),
        ({"validation_dataset": "datasets/nope"}, "validation_dataset", "datasets/{id}"),
    ],
)
async def test_vertex_fields_out_of_bounds_are_refused(
    api_only: System, fields: dict[str, Any], field: str, words: str
) -> None:
    found = await refused(api_only, VERTEX_TENANT, **fields)
    assert list(found) == [f"tuning_job.{field}"]
    assert words in found[f"tuning_job.{field}"]


async def test_another_tenants_validation_dataset_is_not_found(api_only: System) -> None:
    theirs = await api_only.upload(jsonl(25), tenant="team-a")
    found = await refused(api_only, VERTEX_TENANT, validation_dataset=theirs.name)
    assert "not found" in found["tuning_job.validation_dataset"]


async def test_a_validation_dataset_over_5000_examples_is_refused(api_only: System) -> None:
    large = await api_only.upload(jsonl(5_001), tenant=VERTEX_TENANT, chunk_bytes=64_000)
    assert large.stats.example_count == 5_001
    found = await refused(api_only, VERTEX_TENANT, validation_dataset=large.name)
    assert "5001 examples; at most 5000" in found["tuning_job.validation_dataset"]
    fits = await api_only.upload(jsonl(5_000), tenant=VERTEX_TENANT, chunk_bytes=64_000)
    job = await vertex_create(api_only, validation_dataset=fits.name)
    assert job.validation_dataset == fits.name


async def test_a_job_stored_before_providers_still_answers(api_only: System) -> None:
    created = await api_only.create()
    key = Keys(api_only.settings.redis_key_prefix).job("team-a", created.name.split("/")[1])
    raw = await api_only.redis.hget(key, "doc")
    assert raw is not None
    record = json.loads(raw)
    new_keys = {
        "system_instruction",
        "validation_dataset",
        "export_last_checkpoint_only",
        "provider",
        "data_stats",
        "checkpoints",
        "tuned_model_endpoint",
    }
    old = {k: v for k, v in record.items() if k not in new_keys}
    del old["hyperparameters"]["adapter_size"]
    old["display_name"] = "written long ago"  # to see the old record answer, not a cache
    await api_only.redis.hset(key, "doc", json.dumps(old))

    async def answers_the_old_record() -> bool:
        return (await api_only.get(created.name)).display_name == "written long ago"

    await api_only.eventually(answers_the_old_record)
    got = await api_only.get(created.name)
    assert got.provider == TuningJob.Provider.GEMINI_API
    assert got.hyperparameters == created.hyperparameters
    listed = await api_only.list_jobs()
    assert [j.provider for j in listed.tuning_jobs] == [TuningJob.Provider.GEMINI_API]


async def test_a_large_create_is_held_to_its_provider_in_a_checking_process(
    make_system: SystemFactory,
) -> None:
    # Past the small-request bound the request is validated in a child process, which
    # gets the tenant's provider as a value.
    async with make_system(
        with_worker=False, validation_processes=1, grpc_small_request_max_bytes=1
    ) as system:
        found = await refused(system, VERTEX_TENANT, hyperparameters=Hyper(batch_size=4))
        assert "vertex provider" in found["tuning_job.hyperparameters.batch_size"]
        job = await vertex_create(system, hyperparameters=Hyper(adapter_size=8))
        assert job.hyperparameters.adapter_size == 8
        assert job.provider == TuningJob.Provider.VERTEX_AI
