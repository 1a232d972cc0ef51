"""RetuneTuningJob and base-model retirement, through real gRPC on the real stack.

A re-tune makes a new job from a job's recipe on a new base model, by CreateTuningJob's
own rules (the tenant's provider now, its refusals, quotas and request_id); a base model
retiring within the warning window is flagged on jobs and aliases and selected by
ListTuningJobs' filter; a retired one is refused."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any

import grpc
import pytest

from devstack.tenants import write_tenant_files
from tests.conftest import SystemFactory
from tests.harness import BASE_MODEL, VERTEX_PROVIDER, VERTEX_TENANT, State, System
from tests.rpc_errors import reason, violations
from tests.service.test_aliases import Aliases
from tests.service.test_datasets import jsonl
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

pytestmark = pytest.mark.timeout(60)
Hyper = tuning_job_pb2.Hyperparameters
OTHER_MODEL = "models/gemini-1.0-pro-001"
VERTEX_MODEL = "gemini-2.5-flash"
DAY_S = 86_400


async def retune(
    system: System, name: str, base_model: str, tenant: str = "team-a", **fields: Any
) -> tuning_job_pb2.TuningJob:
    request = tuning_service_pb2.RetuneTuningJobRequest(name=name, base_model=base_model, **fields)
    return await system.stub.RetuneTuningJob(request, metadata=system.auth(tenant))


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def day(offset_days: float) -> str:
    """The UTC date `offset_days` from now (the API reads the system clock)."""
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=offset_days)
    return moment.date().isoformat()


async def job_id(name: str) -> str:
    return name.removeprefix("tuningJobs/")


# RetuneTuningJob.


async def test_a_succeeded_job_is_retuned_on_a_new_base_model_with_its_recipe(
    system: System,
) -> None:
    source = await system.create(
        description="adds one",
        labels={"team": "numbers"},
        prompt_template="Q: {input}\nA:",
        hyperparameters=Hyper(epoch_count=3, batch_size=4, learning_rate=0.001),
    )
    assert (await system.finish_training(source.name)).state == State.SUCCEEDED

    new = await retune(system, source.name, OTHER_MODEL)

    assert new.state == State.QUEUED
    assert new.name != source.name
    assert new.source_job == source.name
    assert new.base_model == OTHER_MODEL
    assert new.display_name == source.display_name
    assert new.description == "adds one"
    assert dict(new.labels) == {"team": "numbers"}
    assert new.prompt_template == "Q: {input}\nA:"
    assert new.hyperparameters == Hyper(epoch_count=3, batch_size=4, learning_rate=0.001)
    assert (await system.get(new.name)).source_job == source.name
    # The same examples, kept with the source after its submission: the new job trains.
    stored = await system.store.examples("team-a", await job_id(new.name))
    assert stored == await system.store.examples("team-a", await job_id(source.name))
    assert (await system.finish_training(new.name)).state == State.SUCCEEDED


async def test_a_large_recipe_is_rebuilt_off_the_event_loop_with_the_same_examples(
    make_system: SystemFactory,
) -> None:
    async with make_system(with_worker=False, grpc_small_request_max_bytes=200) as system:
        source = await system.create()
        source_examples = await system.store.examples("team-a", await job_id(source.name))
        assert source_examples is not None and len(source_examples) > 200
        new = await retune(system, source.name, OTHER_MODEL)
        assert await system.store.examples("team-a", await job_id(new.name)) == source_examples


async def test_the_same_request_id_answers_the_same_job(api_only: System) -> None:
    source = await api_only.create()
    first = await retune(api_only, source.name, OTHER_MODEL, request_id="retune-1")
    again = await retune(api_only, source.name, OTHER_MODEL, request_id="retune-1")
    assert again.name == first.name
    listed = (await api_only.list_jobs()).tuning_jobs
    assert [j.name for j in listed] == [first.name, source.name]


async def test_hyperparameters_are_changed_or_reset_field_by_field(api_only: System) -> None:
    source = await api_only.create(
        hyperparameters=Hyper(epoch_count=3, batch_size=4, learning_rate=0.001)
    )
    changed = await retune(
        api_only, source.name, OTHER_MODEL, hyperparameters=Hyper(learning_rate_multiplier=2.0)
    )
    assert changed.hyperparameters == Hyper(
        epoch_count=3, batch_size=4, learning_rate_multiplier=2.0
    )
    reset = await retune(
        api_only,
        source.name,
        OTHER_MODEL,
        reset_hyperparameters=True,
        hyperparameters=Hyper(epoch_count=7),
        display_name="renamed",
    )
    assert reset.hyperparameters == Hyper(epoch_count=7)
    assert reset.display_name == "renamed"


async def test_a_recipe_moves_to_the_tenants_new_provider_or_is_refused_naming_the_field(
    api_only: System,
) -> None:
    source = await api_only.create(hyperparameters=Hyper(epoch_count=2, batch_size=4))
    tenants = dict(api_only.tenants)
    tenants["team-a"] = dataclasses.replace(
        tenants["team-a"], provider=VERTEX_PROVIDER, scopes=tenants[VERTEX_TENANT].scopes
    )
    write_tenant_files(api_only.tenants_file.parent, list(tenants.values()))
    await asyncio.sleep(1.1)  # the file is looked at again at most once a second

    error = await refused(retune(api_only, source.name, VERTEX_MODEL))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(error)
    assert list(found) == ["hyperparameters.batch_size"]
    assert "not accepted by the vertex provider" in found["hyperparameters.batch_size"]
    assert "reset_hyperparameters" in found["hyperparameters.batch_size"]
    on_gemini = await refused(retune(api_only, source.name, OTHER_MODEL))
    assert "vertex provider" in violations(on_gemini)["base_model"]

    moved = await retune(
        api_only,
        source.name,
        VERTEX_MODEL,
        reset_hyperparameters=True,
        hyperparameters=Hyper(epoch_count=2),
    )
    assert moved.provider == tuning_job_pb2.TuningJob.Provider.VERTEX_AI
    assert moved.hyperparameters == Hyper(epoch_count=2)
    assert moved.source_job == source.name


async def test_a_vertex_recipe_keeps_what_only_vertex_takes(api_only: System) -> None:
    validation = await api_only.upload(jsonl(20), tenant=VERTEX_TENANT)
    request = tuning_service_pb2.CreateTuningJobRequest(
        tuning_job=tuning_job_pb2.TuningJob(
            base_model=VERTEX_MODEL,
            hyperparameters=Hyper(epoch_count=2, adapter_size=4),
            training_examples=[
                tuning_job_pb2.TrainingExample(text_input=str(n), output=str(n + 1))
                for n in range(20)
            ],
            system_instruction="Answer with a number.",
            validation_dataset=validation.name,
            export_last_checkpoint_only=True,
        )
    )
    source = await api_only.stub.CreateTuningJob(request, metadata=api_only.auth(VERTEX_TENANT))
    new = await retune(api_only, source.name, "gemini-2.5-pro", tenant=VERTEX_TENANT)
    assert new.provider == tuning_job_pb2.TuningJob.Provider.VERTEX_AI
    assert new.base_model == "gemini-2.5-pro"
    assert new.system_instruction == "Answer with a number."
    assert new.validation_dataset == validation.name
    assert new.export_last_checkpoint_only
    assert new.hyperparameters == Hyper(epoch_count=2, adapter_size=4)
    assert new.HasField("base_model_retire_time")  # the 2.5 family has default dates


async def test_another_tenants_job_is_not_found_like_a_missing_or_deleted_one(
    api_only: System,
) -> None:
    theirs = await api_only.create("team-b")
    mine = await api_only.create()
    await api_only.delete(mine.name)
    missing = "tuningJobs/j" + "a" * 19
    for name in (theirs.name, mine.name, missing):
        error = await refused(retune(api_only, name, OTHER_MODEL))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error.details() == f"{name} not found"


async def test_a_bad_name_or_no_base_model_is_refused_before_any_lookup(
    api_only: System,
) -> None:
    error = await refused(retune(api_only, "tuningJobs/" + "x" * 500, ""))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == {"name", "base_model"}
    error = await refused(retune(api_only, "tuningJobs/j" + "a" * 19, "m" * 200))
    assert "at most 128" in violations(error)["base_model"]


async def test_a_job_whose_dataset_was_deleted_cannot_be_retuned(api_only: System) -> None:
    dataset = await api_only.upload(jsonl(20))
    source = await api_only.create(dataset=dataset.name, training_examples=[])
    kept = await retune(api_only, source.name, OTHER_MODEL)
    assert kept.dataset == dataset.name
    request = tuning_service_pb2.DeleteDatasetRequest(name=dataset.name)
    await api_only.stub.DeleteDataset(request, metadata=api_only.auth())

    error = await refused(retune(api_only, source.name, OTHER_MODEL))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(error) == "RECIPE_DATA_GONE"
    assert dataset.name in (error.details() or "")


async def test_validate_only_checks_the_retune_and_stores_nothing(api_only: System) -> None:
    source = await api_only.create()
    checked = await retune(api_only, source.name, OTHER_MODEL, validate_only=True)
    assert checked.source_job == source.name
    assert [j.name for j in (await api_only.list_jobs()).tuning_jobs] == [source.name]


# Retirement.


async def test_a_retired_base_model_is_refused_for_a_create_and_a_retune(
    make_system: SystemFactory,
) -> None:
    async with make_system(
        with_worker=False, base_model_retirements=(f"{OTHER_MODEL}=2025-02-15",)
    ) as system:
        error = await refused(system.create(base_model=OTHER_MODEL))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "retired on 2025-02-15" in violations(error)["tuning_job.base_model"]
        source = await system.create()
        error = await refused(retune(system, source.name, OTHER_MODEL))
        assert "retired on 2025-02-15" in violations(error)["base_model"]


async def test_a_job_on_a_retiring_base_model_is_flagged_and_filtered(
    make_system: SystemFactory,
) -> None:
    soon, later = day(30), day(400)
    async with make_system(
        with_worker=False,
        base_model_retirements=(f"{BASE_MODEL}={soon}", f"{OTHER_MODEL}={later}"),
        retirement_warning_days=90,
    ) as system:
        retiring = await system.create()
        fine = await system.create(base_model=OTHER_MODEL)
        assert retiring.base_model_retiring
        assert not fine.base_model_retiring
        soon_s = datetime.datetime.fromisoformat(soon).replace(tzinfo=datetime.UTC).timestamp()
        for _ in range(2):  # the second read is the near cache's
            got = await system.get(retiring.name)
            assert got.base_model_retiring
            assert got.base_model_retire_time.seconds == soon_s
        assert (await system.get(fine.name)).HasField("base_model_retire_time")
        assert not (await system.get(fine.name)).base_model_retiring

        exported = system.api_metrics.registry.get_sample_value(
            "tuning_base_model_retire_timestamp_seconds", {"base_model": BASE_MODEL}
        )
        assert exported == soon_s

        flagged = await system.list_jobs(filter="base_model_retiring = true")
        assert [j.name for j in flagged.tuning_jobs] == [retiring.name]
        assert flagged.tuning_jobs[0].base_model_retiring
        others = await system.list_jobs(filter="base_model_retiring = false AND state = QUEUED")
        assert [j.name for j in others.tuning_jobs] == [fine.name]
        error = await refused(system.list_jobs(filter="base_model_retiring = maybe"))
        assert "filter" in violations(error)


async def test_an_alias_shows_the_earliest_retirement_of_its_targets(
    make_system: SystemFactory,
) -> None:
    soon = day(10)
    async with make_system(
        base_model_retirements=(f"{BASE_MODEL}={soon}", f"{OTHER_MODEL}={day(300)}"),
    ) as system:
        first = await system.create()
        second = await system.create(base_model=OTHER_MODEL)
        for job in (first, second):
            assert (await system.finish_training(job.name)).state == State.SUCCEEDED
        for _ in range(2):  # a SUCCEEDED job's answer is cached: the flag is not
            assert (await system.get(first.name)).base_model_retiring
        aliases = Aliases(system)
        calm = await aliases.create("prod", second.name)
        assert not calm.base_model_retiring
        canary = await aliases.move(
            calm.name, second.name, canary_target=first.name, canary_percent=10
        )
        assert canary.base_model_retiring
        got = await aliases.get(calm.name)
        assert got.base_model_retiring
        assert got.base_model_retire_time == (await system.get(first.name)).base_model_retire_time
        listed = await aliases.list()
        assert [a.base_model_retiring for a in listed.aliases] == [True]
