"""The worker's steps driving the Vertex AI provider: real Redis, the emulator over HTTP."""

from __future__ import annotations

import math

from core.domain.job import Example, Hyperparameters, Job, encode_examples, new_job_id
from core.domain.states import JobState
from core.redis.client import Redis
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from devstack.redis_server import RedisServer
from tests import harness
from tests.worker.conftest import fenced
from tests.worker.vertex.conftest import TENANT, Vertex
from tests.worker.vertex.test_provider import request
from worker import fence
from worker.fence import Fence
from worker.providers import Providers
from worker.steps import Steps


async def visit(steps: Steps, store: JobStore, job_id: str) -> tuple[float | None, Job]:
    """One visit of the job, as a worker makes it; what it said and the job after it."""
    acquired = await store.acquire(TENANT, job_id, 5.0)
    assert acquired is not None
    lease, current = acquired
    with fence.holding(Fence("visit", math.inf)):
        outcome = (await steps.advance(lease, current)).delay_s
    await store.release(lease)
    found = await store.read(TENANT, job_id)
    assert found is not None
    return outcome, found.job


def steps_for(vertex: Vertex, store: JobStore, redis_server: RedisServer, prefix: str) -> Steps:
    settings = harness.test_settings(redis_server.url, prefix, delete_cancelled_models=False)
    clock = vertex.upstream.clock
    providers = Providers.only(vertex.provider)
    return Steps(store, providers, lambda _tenant: vertex.auth(), settings, clock)


async def test_a_job_runs_to_success_on_vertex(
    vertex: Vertex, redis: Redis, redis_server: RedisServer, prefix: str
) -> None:
    store = JobStore(redis, Keys(prefix), vertex.upstream.clock)
    steps = steps_for(vertex, store, redis_server, prefix)
    job_id = new_job_id(TENANT, "steps")
    examples = [Example(str(n), str(n + 1)) for n in range(20)]
    job = Job(job_id, TENANT, "gemini-2.5-flash", hyperparameters=Hyperparameters(epoch_count=2))
    await store.create(job, encode_examples(examples))

    _, job = await visit(steps, store, job_id)
    assert job.state == JobState.RUNNING and "/tuningJobs/" in job.tuned_model
    for _ in range(60):
        vertex.upstream.clock.advance(5)
        _, job = await visit(steps, store, job_id)
        if job.state.terminal:
            break
    assert job.state == JobState.SUCCEEDED
    assert job.progress.total_steps > 0
    assert len(await vertex.jobs_labelled(job_id)) == 1


async def test_a_cancel_waits_for_a_job_found_by_its_label(
    vertex: Vertex, redis: Redis, redis_server: RedisServer, prefix: str
) -> None:
    """The create reached the upstream but its answer never reached the job: the cancel
    finds the tuning job by its label, and the job ends as the upstream's job does."""
    store = JobStore(redis, Keys(prefix), vertex.upstream.clock)
    steps = steps_for(vertex, store, redis_server, prefix)
    job_id = new_job_id(TENANT, "cancel")
    await store.create(Job(job_id, TENANT, "gemini-2.5-flash", state=JobState.CANCELLING), b"[]")
    with fenced():
        await vertex.provider.create(vertex.auth(), request(job_id))
    vertex.upstream.clock.advance(6)  # Training.

    again_s, job = await visit(steps, store, job_id)
    assert again_s is not None and job.state == JobState.CANCELLING  # Asked, not yet stopped.
    assert [j["state"] for j in await vertex.jobs_labelled(job_id)] == ["JOB_STATE_CANCELLING"]
    vertex.upstream.clock.advance(2)
    again_s, job = await visit(steps, store, job_id)
    assert (again_s, job.state) == (None, JobState.CANCELLED)
    assert [j["state"] for j in await vertex.jobs_labelled(job_id)] == ["JOB_STATE_CANCELLED"]
