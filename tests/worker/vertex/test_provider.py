"""The Vertex AI provider against the emulator: one tuning job per job, whatever fails."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest

from core.domain.job import Example, Hyperparameters, new_job_id
from core.domain.upstream import UpstreamState, UpstreamStatus
from core.errors import UpstreamNotFound, UpstreamRejected, UpstreamRetryable
from tests.worker.conftest import fenced
from tests.worker.vertex.conftest import BUCKET, PARENT, Vertex
from worker.fence import FenceMissing
from worker.provider import TuningRequest

Check = Callable[[], Awaitable[UpstreamStatus]]


def request(job_id: str, examples: int = 20, **hyper: int) -> TuningRequest:
    pairs = [Example(str(n), str(n + 1)) for n in range(examples)]
    return TuningRequest(
        model_id=f"tj-{job_id}",
        base_model="gemini-2.5-flash",
        display_name="numbers",
        description="adds one",
        hyperparameters=Hyperparameters(epoch_count=hyper.get("epochs", 2)),
        examples=pairs,
    )


async def ended(vertex: Vertex, check: Check, step_s: float = 5.0) -> UpstreamStatus:
    """Move the emulator's clock on until `check` says the job has ended (or give up)."""
    for _ in range(100):
        status = await check()
        if status.state != UpstreamState.RUNNING:
            return status
        vertex.upstream.clock.advance(step_s)
    raise AssertionError(f"still {status.state} after {100 * step_s}s of upstream time")


async def created(vertex: Vertex, job_id: str) -> UpstreamStatus:
    with fenced():
        return await vertex.provider.create(vertex.auth(), request(job_id))


async def test_create_stages_the_file_and_the_job_runs_to_success(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "one")
    status = await created(vertex, job_id)
    assert status.state == UpstreamState.RUNNING
    name = status.ref.tuned_model
    assert name.startswith("projects/") and "/tuningJobs/" in name
    assert status.ref.operation == name  # What a cancel stops.
    assert await vertex.object_names() == [vertex.provider.object_name(job_id)]

    done = await ended(vertex, lambda: vertex.provider.status(vertex.auth(), status.ref))
    assert done.state == UpstreamState.SUCCEEDED
    assert done.start_time is not None and done.end_time is not None
    assert done.progress.total_steps > 0
    assert done.progress.completed_steps == done.progress.total_steps
    answer = await vertex.provider.generate(vertex.auth(), status.ref, "7")
    assert answer


async def test_a_dropped_create_answer_is_found_and_adopted(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "dropped")
    await vertex.upstream.faults({"route": "tuningJobs.create", "drop": True})
    status = await created(vertex, job_id)
    jobs = await vertex.jobs_labelled(job_id)
    assert [j["name"] for j in jobs] == [status.ref.tuned_model]
    # Looked for before the create, and again after its answer was lost.
    assert await vertex.upstream.requests("tuningJobs.list") == 2
    assert await vertex.upstream.requests("tuningJobs.create") == 1


async def test_a_retry_after_a_lost_create_adopts_the_job_it_made(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "lost")
    await vertex.upstream.faults(
        {"route": "tuningJobs.create", "drop": True},
        {"route": "tuningJobs.list", "status": 503},  # The look after the drop fails too.
    )
    with pytest.raises(UpstreamRetryable):
        await created(vertex, job_id)
    status = await created(vertex, job_id)
    jobs = await vertex.jobs_labelled(job_id)
    assert [j["name"] for j in jobs] == [status.ref.tuned_model]
    assert await vertex.upstream.requests("tuningJobs.create") == 1
    assert await vertex.upstream.requests("storage.objects.insert") == 1


async def test_a_retry_finds_its_file_staged_and_creates_once(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "refused")
    await vertex.upstream.faults({"route": "tuningJobs.create", "status": 503})
    with pytest.raises(UpstreamRetryable):
        await created(vertex, job_id)
    assert await vertex.jobs_labelled(job_id) == []
    status = await created(vertex, job_id)  # Its upload meets 412: the same bytes.
    assert [j["name"] for j in await vertex.jobs_labelled(job_id)] == [status.ref.tuned_model]
    assert await vertex.upstream.requests("storage.objects.insert") == 2


async def test_a_staged_file_of_other_bytes_is_refused(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "other")
    await vertex.upstream.faults({"route": "tuningJobs.create", "status": 503})
    with pytest.raises(UpstreamRetryable):
        await created(vertex, job_id)
    with fenced(), pytest.raises(UpstreamRejected, match="other bytes"):
        await vertex.provider.create(vertex.auth(), request(job_id, examples=21))
    assert await vertex.jobs_labelled(job_id) == []


async def test_a_job_not_yet_named_is_found_by_its_label(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "unnamed")
    ref = vertex.provider.ref_for(f"tj-{job_id}")
    with pytest.raises(UpstreamNotFound):
        await vertex.provider.status(vertex.auth(), ref)
    made = await created(vertex, job_id)
    found = await vertex.provider.status(vertex.auth(), ref)
    assert found.ref.tuned_model == made.ref.tuned_model
    assert found.ref.operation == made.ref.operation


async def test_cancel_ends_the_job_cancelled(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "cancel")
    status = await created(vertex, job_id)
    vertex.upstream.clock.advance(6)  # Past PENDING: it trains.
    with fenced():
        await vertex.provider.cancel(vertex.auth(), status.ref)
    cancelling = await vertex.provider.status(vertex.auth(), status.ref)
    assert cancelling.state == UpstreamState.RUNNING  # CANCELLING: not over yet.
    done = await ended(vertex, lambda: vertex.provider.status(vertex.auth(), status.ref), 1.0)
    assert done.state == UpstreamState.CANCELLED
    with fenced():
        await vertex.provider.cancel(vertex.auth(), status.ref)  # Over: nothing to do.


async def test_delete_cleans_up_endpoints_model_and_staged_file(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "delete")
    status = await created(vertex, job_id)
    await ended(vertex, lambda: vertex.provider.status(vertex.auth(), status.ref))
    job = await vertex.client.get_tuning_job(vertex.auth(), status.ref.tuned_model)
    tuned = job["tunedModel"]
    endpoints = {tuned["endpoint"]} | {c["endpoint"] for c in tuned["checkpoints"]}
    assert len(endpoints) > 1  # Checkpoints have endpoints of their own.
    with fenced():
        await vertex.provider.delete(vertex.auth(), status.ref)
    for endpoint in endpoints:
        with pytest.raises(UpstreamNotFound):
            await vertex.client.get_endpoint(vertex.auth(), endpoint)
    with pytest.raises(UpstreamNotFound):
        await vertex.client.get_model(vertex.auth(), tuned["model"])
    assert await vertex.object_names() == []
    with fenced():
        await vertex.provider.delete(vertex.auth(), status.ref)  # Again: nothing left.


async def test_a_refused_create_leaves_no_file_behind(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "unknown-base")
    unknown = dataclasses.replace(request(job_id), base_model="gemini-0-nope")
    with fenced(), pytest.raises(UpstreamRejected):
        await vertex.provider.create(vertex.auth(), unknown)
    assert await vertex.object_names() == []


async def test_an_endpoint_still_in_use_is_deleted_on_a_later_try(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "busy")
    status = await created(vertex, job_id)
    await ended(vertex, lambda: vertex.provider.status(vertex.auth(), status.ref))
    # The undeploy is lost (404 without undeploying): the endpoint still has the model.
    await vertex.upstream.faults({"route": "endpoints.undeployModel", "status": 404})
    with fenced(), pytest.raises(UpstreamRetryable, match="still in use"):
        await vertex.provider.delete(vertex.auth(), status.ref)
    assert await vertex.object_names() != []
    with fenced():
        await vertex.provider.delete(vertex.auth(), status.ref)
    assert await vertex.object_names() == []


async def test_a_failed_job_keeps_its_words_and_its_model_is_deleted(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "failed")
    await vertex.upstream.faults(
        {"route": "tuningJobs.create", "training": {"fail_creating_endpoint": True}}
    )
    status = await created(vertex, job_id)
    done = await ended(vertex, lambda: vertex.provider.status(vertex.auth(), status.ref))
    assert done.state == UpstreamState.FAILED
    assert done.error is not None and done.error.code == 13
    assert "Failed to create endpoint" in done.error.message
    job = await vertex.client.get_tuning_job(vertex.auth(), status.ref.tuned_model)
    await vertex.client.get_model(vertex.auth(), job["tunedModel"]["model"])
    with fenced():
        await vertex.provider.delete(vertex.auth(), status.ref)
    with pytest.raises(UpstreamNotFound):
        await vertex.client.get_model(vertex.auth(), job["tunedModel"]["model"])
    assert await vertex.object_names() == []


async def test_a_running_job_keeps_its_staged_file_until_it_ends(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "early")
    status = await created(vertex, job_id)
    with fenced():
        await vertex.provider.delete(vertex.auth(), status.ref)
    assert await vertex.object_names() == [vertex.provider.object_name(job_id)]
    page = await vertex.provider.list_owned(vertex.auth(), page_size=10)
    assert [r.job_id for r in page.resources] == [job_id]


async def test_list_owned_reports_ours_until_cleaned_up(vertex: Vertex) -> None:
    ours = new_job_id("team-v", "ours")
    status = await created(vertex, ours)
    foreign = {
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {"trainingDatasetUri": f"gs://{BUCKET}/elsewhere.jsonl"},
        "labels": {"team": "other"},
    }
    with fenced():
        await vertex.client.create_tuning_job(vertex.auth(), PARENT, foreign)
    page = await vertex.provider.list_owned(vertex.auth(), page_size=10)
    assert [(r.kind, r.name, r.job_id) for r in page.resources] == [
        ("tuningJob", status.ref.tuned_model, ours)
    ]
    assert page.resources[0].update_time >= page.resources[0].create_time > 0

    with fenced():
        await vertex.provider.delete_owned(vertex.auth(), page.resources[0])
    done = await ended(vertex, lambda: vertex.provider.status(vertex.auth(), status.ref), 1.0)
    assert done.state == UpstreamState.CANCELLED  # The reconciler's delete stops it first.
    page = await vertex.provider.list_owned(vertex.auth(), page_size=10)
    assert len(page.resources) == 1  # Ended, but its staged file is still there.
    with fenced():
        await vertex.provider.delete_owned(vertex.auth(), page.resources[0])
    assert (await vertex.provider.list_owned(vertex.auth(), page_size=10)).resources == []


async def test_no_side_effect_leaves_outside_a_fence(vertex: Vertex) -> None:
    job_id = new_job_id("team-v", "nofence")
    with pytest.raises(FenceMissing):
        await vertex.provider.create(vertex.auth(), request(job_id))
    assert await vertex.upstream.requests("storage.objects.insert") == 0
    assert await vertex.upstream.requests("tuningJobs.create") == 0
