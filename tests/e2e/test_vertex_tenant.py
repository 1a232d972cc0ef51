"""A Vertex AI tenant's job through the whole system: the gRPC API, Redis, a worker and
the emulator's Vertex AI and Cloud Storage, next to a Gemini API tenant's.

The worker picks each job's provider from the job (core.domain.providers): team-v's job
is staged in its bucket, created as one tuning job in its project, followed to the end,
and answers what Vertex reported (data statistics, checkpoints, model and endpoint),
while team-a's job goes to the Gemini API as before.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import SystemFactory
from tests.harness import VERTEX_PROVIDER, VERTEX_TENANT, System, token_form
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

pytestmark = pytest.mark.timeout(90)
State = tuning_job_pb2.TuningJob.State
VERTEX_MODEL = "gemini-2.5-flash"


def vertex_fields(**more: Any) -> dict[str, Any]:
    hyper = tuning_job_pb2.Hyperparameters(epoch_count=2, adapter_size=4)
    return {"base_model": VERTEX_MODEL, "hyperparameters": hyper, **more}


async def inspect(system: System, path: str) -> Any:
    async with httpx.AsyncClient(base_url=system.emulator_url) as http:
        return (await http.get(path)).json()


async def test_each_tenant_tunes_on_its_own_provider(system: System) -> None:
    fields = vertex_fields(system_instruction="Answer with one number.")
    vertex_job = await system.create(tenant=VERTEX_TENANT, **fields)
    gemini_job = await system.create()
    assert vertex_job.provider == tuning_job_pb2.TuningJob.VERTEX_AI
    assert gemini_job.provider == tuning_job_pb2.TuningJob.GEMINI_API

    done = await system.finish_training(vertex_job.name, tenant=VERTEX_TENANT)
    assert done.state == State.SUCCEEDED, done.error
    assert done.tuned_model.startswith("projects/") and "/models/" in done.tuned_model
    assert "/endpoints/" in done.tuned_model_endpoint
    assert [c.epoch for c in done.checkpoints] == [1, 2]
    assert done.tuning_data_stats.example_count == 20
    assert done.tuning_data_stats.step_count > 0
    assert (await system.finish_training(gemini_job.name)).tuned_model.startswith("tunedModels/")

    jobs = (await inspect(system, "/_emulator/vertex/tuningJobs"))["tuningJobs"]
    assert len(jobs) == 1  # exactly one upstream tuning job, in team-v's project
    assert jobs[0]["project"] == VERTEX_PROVIDER["project"], jobs[0]
    objects = (await inspect(system, "/_emulator/storage/objects"))["objects"]
    staged = [o for o in objects if o["bucket"] == "team-v-tuning"]
    assert [o["name"].split("/")[0] for o in staged] == ["platform"]
    lines = await staged_lines(system, staged[0])
    assert lines[0]["systemInstruction"] == {"parts": [{"text": "Answer with one number."}]}
    assert [turn["role"] for turn in lines[0]["contents"]] == ["user", "model"]


async def staged_lines(system: System, stored: dict[str, Any]) -> list[Any]:
    """The staged file, read back through the Cloud Storage API with team-v's grant."""
    async with httpx.AsyncClient(base_url=system.emulator_url) as http:
        token = await http.post("/token", data=token_form(system.tenants[VERTEX_TENANT]))
        headers = {"authorization": f"Bearer {token.json()['access_token']}"}
        path = f"/storage/v1/b/{stored['bucket']}/o/{quote(stored['name'], safe='')}"
        body = await http.get(path, params={"alt": "media"}, headers=headers)
    return [json.loads(line) for line in body.text.splitlines()]


async def test_a_deleted_vertex_job_leaves_nothing_upstream(system: System) -> None:
    job = await system.create(tenant=VERTEX_TENANT, **vertex_fields())
    await system.finish_training(job.name, tenant=VERTEX_TENANT)
    await system.delete(job.name, tenant=VERTEX_TENANT)

    async def cleaned() -> bool:
        objects = (await inspect(system, "/_emulator/storage/objects"))["objects"]
        return not [o for o in objects if o["bucket"] == "team-v-tuning"]

    await system.eventually(cleaned, timeout_s=30)


def jsonl(count: int) -> bytes:
    rows = [json.dumps({"text_input": f"{n} + 1", "output": str(n + 1)}) for n in range(count)]
    return ("\n".join(rows) + "\n").encode()


async def test_a_validation_dataset_is_staged_beside_the_training_file(system: System) -> None:
    validation = await system.upload(jsonl(20), tenant=VERTEX_TENANT)
    fields = vertex_fields(validation_dataset=validation.name)
    job = await system.create(tenant=VERTEX_TENANT, **fields)
    assert (await system.finish_training(job.name, tenant=VERTEX_TENANT)).state == State.SUCCEEDED
    objects = (await inspect(system, "/_emulator/storage/objects"))["objects"]
    job_id = job.name.removeprefix("tuningJobs/")
    staged = sorted(o["name"] for o in objects if o["bucket"] == "team-v-tuning")
    assert staged == [f"platform/{job_id}/training.jsonl", f"platform/{job_id}/validation.jsonl"]
    validation_lines = await staged_lines(system, {"bucket": "team-v-tuning", "name": staged[1]})
    assert [line["contents"][0]["parts"][0]["text"] for line in validation_lines][:2] == [
        "0 + 1",
        "1 + 1",
    ]
    await system.delete(job.name, tenant=VERTEX_TENANT)

    async def cleaned() -> bool:
        objects = (await inspect(system, "/_emulator/storage/objects"))["objects"]
        return not [o for o in objects if o["bucket"] == "team-v-tuning"]

    await system.eventually(cleaned, timeout_s=30)


async def test_a_validation_dataset_deleted_before_submission_fails_the_job(
    api_only: System,
) -> None:
    validation = await api_only.upload(jsonl(20), tenant=VERTEX_TENANT)
    job = await api_only.create(
        tenant=VERTEX_TENANT, **vertex_fields(validation_dataset=validation.name)
    )
    request = tuning_service_pb2.DeleteDatasetRequest(name=validation.name)
    await api_only.stub.DeleteDataset(request, metadata=api_only.auth(VERTEX_TENANT))
    await api_only.start_worker()
    failed = await api_only.wait_for(job.name, {State.FAILED}, tenant=VERTEX_TENANT)
    assert "validation dataset" in failed.error.message
    assert (await inspect(api_only, "/_emulator/vertex/tuningJobs"))["tuningJobs"] == []


async def test_a_vertex_job_tunes_on_an_uploaded_dataset_streamed_to_its_bucket(
    make_system: SystemFactory,
) -> None:
    async with make_system(sweep_interval_s=0.2) as system:
        await _tunes_on_an_uploaded_dataset(system)


async def _tunes_on_an_uploaded_dataset(system: System) -> None:
    rows = [{"text_input": f"question: {n}?", "output": str(n + 1)} for n in range(3000)]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    dataset = await system.upload(content, tenant=VERTEX_TENANT, chunk_bytes=64 * 1024)
    fields = vertex_fields(system_instruction="Count.", dataset=dataset.name)
    job = await system.create(tenant=VERTEX_TENANT, training_examples=[], **fields)
    done = await system.finish_training(job.name, tenant=VERTEX_TENANT)
    assert done.state == State.SUCCEEDED, done.error
    assert done.tuning_data_stats.example_count == 3000

    objects = (await inspect(system, "/_emulator/storage/objects"))["objects"]
    staged = [o for o in objects if o["bucket"] == "team-v-tuning"]
    lines = await staged_lines(system, staged[0])
    assert len(lines) == 3000  # every example, converted batch by batch as it was read
    assert lines[2999]["contents"][0]["parts"][0]["text"] == "question: 2999?"
    assert lines[0]["systemInstruction"] == {"parts": [{"text": "Count."}]}

    async def copy_discarded() -> bool:  # the job's copy goes once it is submitted
        return not [f for f in await system.stored_files() if "/jobs/" in f]

    await system.eventually(copy_discarded)
