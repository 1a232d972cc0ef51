"""The worker against upstream failures, injected through the emulator's fault knobs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from google.rpc import code_pb2

from tests.conftest import SystemFactory
from tests.harness import State, System, token_form


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
    credentials.write_text(json.dumps(info | {"refresh_token": "rt-no-longer-granted-1234"}))
    job = await system.create("team-b")
    failed = await system.wait_for(job.name, {State.FAILED}, tenant="team-b")
    assert failed.error.code == code_pb2.FAILED_PRECONDITION
    assert "invalid_grant" in failed.error.message
    assert "rt-no-longer-granted-1234" not in failed.error.message
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


async def test_a_grant_without_the_tuning_scope_fails_the_job_with_the_remedy(
    system: System,
) -> None:
    job = await system.create("team-ro")
    failed = await system.wait_for(job.name, {State.FAILED}, tenant="team-ro")
    assert failed.error.code == code_pb2.PERMISSION_DENIED
    assert "generative-language.tuning" in failed.error.message
    assert "must be granted again" in failed.error.message
    assert await system.upstream_requests("tunedModels.create") == 1


async def test_a_model_deleted_upstream_fails_the_job_as_deleted_upstream(system: System) -> None:
    job = await system.create()
    running = await system.wait_for(job.name, {State.RUNNING})
    tenant = system.tenants["team-a"]
    async with httpx.AsyncClient(base_url=system.emulator_url) as http:
        token = (await http.post("/token", data=token_form(tenant))).json()["access_token"]
        answer = await http.delete(
            f"/v1beta/{running.tuned_model}", headers={"authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200
    failed = await system.wait_for(job.name, {State.FAILED})
    assert failed.error.code == code_pb2.NOT_FOUND
    assert "deleted upstream" in failed.error.message


async def test_429_waits_at_least_the_retry_delay_and_does_not_fail(system: System) -> None:
    await system.inject_faults(
        {"route": "tunedModels.create", "status": 429, "retry_delay_s": 1.5, "times": 1}
    )
    started = time.monotonic()
    job = await system.create()
    await system.wait_for(job.name, {State.RUNNING})
    assert time.monotonic() - started >= 1.5
    assert await system.upstream_requests("tunedModels.create") == 2


async def test_429s_are_the_fleets_to_wait_out_not_the_jobs_to_fail_on(
    make_system: SystemFactory,
) -> None:
    # More 429s than a job may fail attempts: a quota is per project, not the job's fault.
    async with make_system(max_step_attempts=2, upstream_rps=50.0, upstream_burst=5) as system:
        await system.inject_faults(
            {"route": "tunedModels.create", "status": 429, "retry_delay_s": 0.2, "times": 4}
        )
        started = time.monotonic()
        job = await system.create()
        running = await system.wait_for(job.name, {State.RUNNING})
        assert not running.HasField("error")
        # Each 429 held the fleet's budget back by its RetryInfo: four of them, 0.2 s each.
        assert time.monotonic() - started >= 0.8
        assert await system.upstream_requests("tunedModels.create") == 5


async def test_a_long_outage_dead_letters_after_the_time_budget_without_a_tight_loop(
    make_system: SystemFactory,
) -> None:
    async with make_system(retry_budget_s=1.0, max_step_attempts=1000, retry_max_s=0.3) as system:
        await system.inject_faults({"route": "tunedModels.create", "status": 503, "times": 1000})
        job = await system.create()
        failed = await system.wait_for(job.name, {State.FAILED})
        assert failed.error.code == code_pb2.UNAVAILABLE
        assert "gave up after" in failed.error.message
        assert "The service is currently unavailable" in failed.error.message
        assert await system.upstream_requests("tunedModels.create") < 30
