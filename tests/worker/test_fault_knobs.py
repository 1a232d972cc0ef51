"""Each emulator fault knob, and the worker surviving it as the upstream contract says."""

from __future__ import annotations

import time

import pytest
from google.rpc import code_pb2

from core.errors import UpstreamRetryable
from core.runtime import deadline
from tests.conftest import SystemFactory
from tests.harness import State, System
from tests.worker.conftest import Upstream, fenced
from tests.worker.gemini.test_client import body


async def test_a_dropped_create_answer_is_adopted_not_duplicated(system: System) -> None:
    await system.inject_faults({"route": "tunedModels.create", "drop": True})
    job = await system.create()
    done = await system.finish_training(job.name)
    assert done.state == State.SUCCEEDED
    assert await system.upstream_requests("tunedModels.create") == 2
    assert (await system.upstream_stats())["creates"] == 1


async def test_training_that_fails_at_step_k_fails_the_job_there(system: System) -> None:
    await system.inject_faults({"route": "tunedModels.create", "training": {"fail_at_step": 3}})
    job = await system.create()
    failed = await system.finish_training(job.name)
    assert failed.state == State.FAILED
    assert failed.progress.completed_steps == 3
    assert failed.error.code == code_pb2.INTERNAL
    assert "step 3" in failed.error.message


async def test_a_stalled_job_keeps_running_and_can_still_be_cancelled(system: System) -> None:
    await system.inject_faults({"route": "tunedModels.create", "training": {"stall_at_step": 2}})
    job = await system.create()
    await system.wait_for(job.name, {State.RUNNING})
    system.clock.advance(3600)
    polls = await system.upstream_requests("operations.get")
    await system.eventually(lambda: _more_polls_than(system, polls + 2), timeout_s=10)
    stalled = await system.get(job.name)
    assert stalled.state == State.RUNNING
    assert stalled.progress.completed_steps == 2
    await system.cancel(job.name)
    assert (await system.wait_for(job.name, {State.CANCELLED})).progress.completed_steps == 2


async def _more_polls_than(system: System, count: int) -> bool:
    return await system.upstream_requests("operations.get") > count


async def test_slow_answers_past_the_step_deadline_are_retried(
    make_system: SystemFactory,
) -> None:
    async with make_system(step_timeout_s=0.3) as system:
        await system.inject_faults({"route": "operations.get", "latency_s": 1.0, "times": 2})
        job = await system.create()
        done = await system.finish_training(job.name)
        assert done.state == State.SUCCEEDED


async def test_the_quota_project_is_sent_as_x_goog_user_project(system: System) -> None:
    job = await system.create("team-b")
    await system.wait_for(job.name, {State.RUNNING}, tenant="team-b")
    assert (await system.upstream_stats())["user_projects"].get("proj-b", 0) >= 1


async def test_a_request_waits_no_longer_than_the_callers_deadline(upstream: Upstream) -> None:
    with fenced():
        await upstream.client.create_tuned_model(upstream.auth(), "tj-slow", body())
    await upstream.faults({"route": "tunedModels.get", "latency_s": 2.0})
    started = time.monotonic()
    with deadline.within(0.3), pytest.raises(UpstreamRetryable) as caught:
        await upstream.client.get_tuned_model(upstream.auth(), "tunedModels/tj-slow")
    assert caught.value.status == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 1.5
