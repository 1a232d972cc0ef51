"""The worker against upstream failures, injected through the emulator's fault knobs."""

from __future__ import annotations

import json
from pathlib import Path

from google.rpc import code_pb2

from tests.harness import State, System


async def test_transient_create_failures_are_retried(system: System) -> None:
    await system.inject_faults({"route": "tunedModels.create", "status": 503, "times": 2})
    job = await system.create()
    done = await system.finish_training(job.name)
    assert done.state == State.SUCCEEDED
    assert await system.upstream_requests("tunedModels.create") == 3
    assert (await system.upstream_stats())["creates"] == 1


async def test_a_lost_create_answer_adopts_the_model_instead_of_making_two(system: System) -> None:
    # The upstream creates the model, then the answer is lost: the retry gets 409.
    await system.inject_faults(
        {"route": "tunedModels.create", "status": 503, "times": 1, "after": True}
    )
    job = await system.create()
    done = await system.finish_training(job.name)
    assert done.state == State.SUCCEEDED
    assert done.tuned_model == f"tunedModels/tj-{job.name.split('/')[1]}"
    assert (await system.upstream_stats())["creates"] == 1
    assert await system.upstream_requests("operations.list") == 1


async def test_a_rejected_create_fails_the_job_with_the_upstreams_words(system: System) -> None:
    await system.inject_faults({"route": "tunedModels.create", "status": 400, "times": 1})
    job = await system.create()
    failed = await system.wait_for(job.name, {State.FAILED})
    assert failed.error.code == code_pb2.INVALID_ARGUMENT
    assert failed.error.message.startswith("upstream: ")
    assert await system.upstream_requests("tunedModels.create") == 1


async def test_training_that_fails_upstream_fails_the_job(system: System) -> None:
    job = await system.create(display_name="doomed [fail]")
    failed = await system.finish_training(job.name)
    assert failed.state == State.FAILED
    assert "emulated training failure" in failed.error.message
    assert failed.progress.completed_steps == 5  # half of 10, where the emulator fails it


async def test_a_refused_credential_fails_the_job_once_without_looping(
    system: System, tmp_path: Path
) -> None:
    credentials = tmp_path / "team-b-oauth.json"
    info = json.loads(credentials.read_text())
    credentials.write_text(json.dumps(info | {"refresh_token": "revoked"}))
    job = await system.create("team-b")
    failed = await system.wait_for(job.name, {State.FAILED}, tenant="team-b")
    assert failed.error.code == code_pb2.FAILED_PRECONDITION
    assert "invalid_grant" in failed.error.message
    assert "revoked" not in failed.error.message
    assert await system.upstream_requests("oauth.token") == 1
    assert await system.upstream_requests("tunedModels.create") == 0


async def test_a_dead_upstream_dead_letters_the_job_after_the_configured_attempts(
    system: System,
) -> None:
    await system.inject_faults({"route": "tunedModels.create", "status": 503, "times": 100})
    job = await system.create()
    failed = await system.wait_for(job.name, {State.FAILED})
    assert failed.error.code == code_pb2.UNAVAILABLE
    assert "gave up after 10 failed attempts" in failed.error.message
    assert await system.upstream_requests("tunedModels.create") == 10
