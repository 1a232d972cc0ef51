"""The inference limits on Generate: each tenant's calls per minute, tokens per minute and
calls in flight, across the fleet; the upstream's 429 honoured by every replica; and the
metrics of generate calls."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2

from core.runtime.metrics import Metrics
from core.security.tenants import TenantDirectory
from service.inference_limits import upstream_of
from service.process import start_api
from tests.conftest import SystemFactory
from tests.harness import BASE_MODEL, VERTEX_TENANT, State, System
from tests.rpc_errors import detail, reason
from tuning.v1 import generation_service_pb2 as gen
from tuning.v1 import generation_service_pb2_grpc, tuning_job_pb2

pytestmark = pytest.mark.timeout(60)
GEMINI_ROUTE = "tunedModels.generateContent"
GEMINI_STREAM = "tunedModels.streamGenerateContent"
VERTEX_ROUTE = "endpoints.generateContent"
Stub = generation_service_pb2_grpc.GenerationServiceStub


@asynccontextmanager
async def limited(
    make_system: SystemFactory, **limits: Any
) -> AsyncIterator[tuple[System, dict[str, str]]]:
    """A system with these settings, and a SUCCEEDED job of team-a's and of team-b's (their
    names by tenant); the worker stopped after, and no refusal brake."""
    async with make_system(tenant_refusals_per_s=0, **limits) as system:
        models = {}
        for tenant in ("team-a", "team-b"):
            job = await system.create(tenant)
            done = await system.finish_training(job.name, tenant)
            assert done.state == State.SUCCEEDED, done.error
            models[tenant] = job.name
        await system.stop_worker()
        yield system, models


def prompt(model: str, text: str = "hello") -> gen.GenerateContentRequest:
    turn = gen.Content(role="user", parts=[gen.Part(text=text)])
    return gen.GenerateContentRequest(model=model, contents=[turn])


async def generate(
    system: System, model: str, tenant: str = "team-a", text: str = "hello"
) -> gen.GenerateContentResponse:
    return await Stub(system.channel).GenerateContent(
        prompt(model, text), metadata=system.auth(tenant)
    )


async def refusal(system: System, model: str, tenant: str = "team-a") -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await generate(system, model, tenant)
    return caught.value


def retry_s(error: grpc.aio.AioRpcError) -> float:
    delay = detail(error, error_details_pb2.RetryInfo).retry_delay
    return float(delay.seconds + delay.nanos / 1e9)


def quota_of(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    """The QuotaFailure's subject and description."""
    violation = detail(error, error_details_pb2.QuotaFailure).violations[0]
    return violation.subject, violation.description


def metadata_of(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return dict(detail(error, error_details_pb2.ErrorInfo).metadata)


async def test_a_tenant_over_its_calls_per_minute_is_refused_and_another_is_not(
    make_system: SystemFactory,
) -> None:
    async with limited(make_system, generate_requests_per_minute=2) as (system, models):
        for _ in range(2):
            await generate(system, models["team-a"])

        error = await refusal(system, models["team-a"])

        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason(error) == "GENERATE_QUOTA_EXCEEDED"
        assert 25 <= retry_s(error) <= 30  # a call's worth refills in 30 s
        subject, description = quota_of(error)
        assert subject == "tenant:team-a"
        assert "generate_requests_per_minute" in description and "(2)" in description
        assert metadata_of(error) == {"quota": "generate_requests_per_minute", "limit": "2"}
        assert await system.upstream_requests(GEMINI_ROUTE) == 2  # the refused one not sent
        await generate(system, models["team-b"], "team-b")  # another tenant's own budget


async def test_a_long_answer_puts_the_token_bucket_in_debt_and_the_next_call_waits(
    make_system: SystemFactory,
) -> None:
    async with limited(make_system, generate_tokens_per_minute=100) as (system, models):
        await generate(system, models["team-a"])  # a few tokens: the bucket still has more
        # Estimated at 75 tokens (300 characters), counted at 150 words and the answer's.
        long = await generate(system, models["team-a"], text="w " * 150)
        assert long.usage_metadata.total_token_count > 150  # over the whole minute's worth

        error = await refusal(system, models["team-a"])

        assert reason(error) == "GENERATE_QUOTA_EXCEEDED"
        assert metadata_of(error)["quota"] == "generate_tokens_per_minute"
        # The debt (over 100 tokens) refills at 100 a minute: over a minute's wait.
        assert retry_s(error) > 60
        await generate(system, models["team-b"], "team-b")


async def test_calls_in_flight_are_bounded_and_each_slot_comes_back(
    make_system: SystemFactory,
) -> None:
    async with limited(make_system, generate_max_concurrent=2) as (system, models):
        await system.inject_faults({"route": GEMINI_STREAM, "chunk_delay_s": 1.0, "times": 10})
        stub, model = Stub(system.channel), models["team-a"]
        streams = [stub.StreamGenerateContent(prompt(model), metadata=system.auth()) for _ in "ab"]
        for stream in streams:
            await stream.read()  # both in flight

        error = await refusal(system, model)

        assert reason(error) == "GENERATE_QUOTA_EXCEEDED"
        assert metadata_of(error) == {"quota": "generate_max_concurrent", "limit": "2"}
        assert retry_s(error) == 1.0
        await generate(system, models["team-b"], "team-b")  # team-b's own slots

        streams[0].cancel()  # a cancelled stream gives its slot back
        await system.eventually(lambda: _passes(system, model), timeout_s=5.0)

        while await streams[1].read() != grpc.aio.EOF:  # read to its end: its slot back too
            pass
        again = [stub.StreamGenerateContent(prompt(model), metadata=system.auth()) for _ in "ab"]
        for stream in again:
            chunk = await stream.read()
            assert isinstance(chunk, gen.GenerateContentResponse)  # both slots free
            stream.cancel()


async def _passes(system: System, model: str) -> bool:
    try:
        await generate(system, model)
    except grpc.aio.AioRpcError as exc:
        assert reason(exc) == "GENERATE_QUOTA_EXCEEDED"
        return False
    return True


async def test_the_upstreams_429_holds_off_every_replica_without_sending(
    system: System,
) -> None:
    job = await system.create()
    assert (await system.finish_training(job.name)).state == State.SUCCEEDED
    other = await system.create("team-b")
    assert (await system.finish_training(other.name, "team-b")).state == State.SUCCEEDED
    await system.stop_worker()
    await system.inject_faults({"route": GEMINI_ROUTE, "status": 429, "retry_delay_s": 30})

    first = await refusal(system, job.name)  # the upstream's own 429
    held = await refusal(system, job.name)

    assert reason(first) == "UPSTREAM_RESOURCE_EXHAUSTED"
    assert held.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(held) == "UPSTREAM_HELD_OFF"
    assert 25 <= retry_s(held) <= 30
    assert quota_of(held)[0] == "upstream:gemini_api:team-a"
    async with second_api(system) as replica:
        from_replica = await refusal(replica, job.name)
    assert reason(from_replica) == "UPSTREAM_HELD_OFF"
    assert 25 <= retry_s(from_replica) <= 30
    assert await system.upstream_requests(GEMINI_ROUTE) == 1  # neither was sent
    # The Gemini API's quota is the tenant's own project's: another tenant still calls.
    await generate(system, other.name, "team-b")
    assert await system.upstream_requests(GEMINI_ROUTE) == 2


async def test_a_vertex_429_holds_off_the_project_and_location_on_every_replica(
    system: System,
) -> None:
    hyper = tuning_job_pb2.Hyperparameters(epoch_count=2, adapter_size=4)
    job = await system.create(VERTEX_TENANT, base_model="gemini-2.5-flash", hyperparameters=hyper)
    done = await system.finish_training(job.name, VERTEX_TENANT)
    assert done.state == State.SUCCEEDED, done.error
    await system.stop_worker()
    await system.inject_faults({"route": VERTEX_ROUTE, "status": 429, "retry_delay_s": 30})

    first = await refusal(system, job.name, VERTEX_TENANT)  # Vertex AI's own 429
    held = await refusal(system, job.name, VERTEX_TENANT)
    async with second_api(system) as replica:
        from_replica = await refusal(replica, job.name, VERTEX_TENANT)

    assert reason(first) == "UPSTREAM_RESOURCE_EXHAUSTED"
    assert reason(held) == reason(from_replica) == "UPSTREAM_HELD_OFF"
    assert 25 <= retry_s(from_replica) <= 30
    # Vertex AI's quota is the project's in its region, shared by the tenants that use it
    # (the project as the endpoint names it: by number, as Vertex AI answers).
    project, location = done.tuned_model_endpoint.split("/")[1:4:2]
    assert quota_of(held)[0] == f"upstream:vertex:{project}:{location}"
    assert location == "us-central1"
    assert await system.upstream_requests(VERTEX_ROUTE) == 1  # neither was sent


@asynccontextmanager
async def second_api(system: System) -> AsyncIterator[System]:
    """Another API replica on the same Redis and emulator: `system` with its channel."""
    async with AsyncExitStack() as stack:
        token_http = stack.enter_context(httpx.Client(timeout=10.0))
        api = await start_api(
            system.settings,
            system.redis,
            TenantDirectory.watch(system.tenants_file),
            listen="127.0.0.1:0",
            token_http=token_http,
            metrics=Metrics.create(),
        )
        stack.push_async_callback(api.stop, 1.0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{api.port}")
        stack.push_async_callback(channel.close)
        yield dataclasses.replace(system, api=api, channel=channel)


async def test_generate_calls_are_counted_by_tenant_with_their_tokens_and_latency(
    make_system: SystemFactory,
) -> None:
    async with limited(make_system, generate_requests_per_minute=1) as (system, models):
        answer = await generate(system, models["team-a"])
        await refusal(system, models["team-a"])
        stub = Stub(system.channel)
        chunks = stub.StreamGenerateContent(
            prompt(models["team-b"]), metadata=system.auth("team-b")
        )
        async for _ in chunks:
            pass

        value = system.api_metrics.registry.get_sample_value
        calls = "tuning_generate_requests_total"
        # By the tuned model's base model (a bounded label, unlike the tuned model's name).
        model = {"base_model": BASE_MODEL}
        a = {"tenant": "team-a", "provider": "gemini_api", "method": "GenerateContent"} | model
        b = {"tenant": "team-b", "provider": "gemini_api", "method": "StreamGenerateContent"}
        b |= model
        assert value(calls, a | {"code": "OK"}) == 1
        assert value(calls, a | {"code": "RESOURCE_EXHAUSTED"}) == 1
        assert value(calls, b | {"code": "OK"}) == 1
        usage = answer.usage_metadata
        tokens = "tuning_generate_tokens_total"
        assert (
            value(tokens, {"tenant": "team-a", "kind": "prompt"} | model)
            == usage.prompt_token_count
        )
        assert value(tokens, {"tenant": "team-a", "kind": "candidates"} | model) == (
            usage.candidates_token_count
        )
        assert (value(tokens, {"tenant": "team-b", "kind": "candidates"} | model) or 0) > 0
        latency = "tuning_generate_duration_seconds_count"
        assert value(latency, {"tenant": "team-a", "method": "GenerateContent"} | model) == 1
        assert value(latency, {"tenant": "team-b", "method": "StreamGenerateContent"} | model) == 1


def test_the_upstream_whose_quota_a_call_spends() -> None:
    vertex = "/v1/projects/p1/locations/europe-west4/endpoints/42:generateContent"
    assert upstream_of("team-v", vertex)[1] == "vertex:p1:europe-west4"  # shared by tenants
    gemini = "/v1beta/tunedModels/m1:generateContent"
    assert upstream_of("team-a", gemini)[1] == "gemini_api:team-a"
