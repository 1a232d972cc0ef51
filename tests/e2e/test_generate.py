"""A tuned model called through the platform, for a tenant of each provider: the job is
trained to SUCCEEDED by a worker, then GenerateContent answers with what the emulator's
model said, through the platform's credential of the tenant (the tenant holds none)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.e2e.test_vertex_tenant import vertex_fields
from tests.harness import VERTEX_TENANT, State, System
from tuning.v1 import generation_service_pb2 as gen
from tuning.v1 import generation_service_pb2_grpc, tuning_job_pb2

pytestmark = pytest.mark.timeout(90)
STOP = gen.Candidate.STOP


def conversation(model: str, question: str) -> gen.GenerateContentRequest:
    """Two turns, a system instruction, generation options and a safety setting: every
    part of a request that the upstream is sent."""
    return gen.GenerateContentRequest(
        model=model,
        contents=[
            gen.Content(role="user", parts=[gen.Part(text="Count with me.")]),
            gen.Content(role="model", parts=[gen.Part(text="Gladly.")]),
            gen.Content(role="user", parts=[gen.Part(text=question)]),
        ],
        system_instruction=gen.Content(parts=[gen.Part(text="Answer with one number.")]),
        generation_config=gen.GenerationConfig(
            temperature=0.2, top_p=0.9, top_k=20, max_output_tokens=64, stop_sequences=["\n\n"]
        ),
        safety_settings=[
            gen.SafetySetting(
                category=gen.HARM_CATEGORY_HARASSMENT,
                threshold=gen.SafetySetting.BLOCK_ONLY_HIGH,
            )
        ],
    )


async def generate(
    system: System, request: gen.GenerateContentRequest, tenant: str
) -> gen.GenerateContentResponse:
    stub = generation_service_pb2_grpc.GenerationServiceStub(system.channel)
    return await stub.GenerateContent(request, metadata=system.auth(tenant), timeout=10)


def assert_answers(answer: gen.GenerateContentResponse, model: str, question: str) -> None:
    """The emulator's reply: its text echoes the prompt; usage is counted; it stopped."""
    (candidate,) = answer.candidates
    text = "".join(part.text for part in candidate.content.parts)
    assert question in text, text
    assert candidate.finish_reason == STOP
    usage = answer.usage_metadata
    assert usage.prompt_token_count > 0 and usage.candidates_token_count > 0
    assert usage.total_token_count >= usage.prompt_token_count + usage.candidates_token_count
    assert answer.model == model


async def trained(
    system: System, tenant: str = "team-a", **fields: Any
) -> tuning_job_pb2.TuningJob:
    job = await system.create(tenant=tenant, **fields)
    done = await system.finish_training(job.name, tenant=tenant)
    assert done.state == State.SUCCEEDED, done.error
    return done


async def test_a_gemini_api_tenants_tuned_model_answers(system: System) -> None:
    job = await trained(system)

    answer = await generate(system, conversation(job.name, "What is 2 + 2?"), "team-a")

    assert_answers(answer, job.name, "What is 2 + 2?")
    assert await system.upstream_requests("tunedModels.generateContent") == 1


async def test_a_vertex_tenants_tuned_model_and_its_checkpoint_answer(system: System) -> None:
    job = await trained(system, VERTEX_TENANT, **vertex_fields())
    assert job.checkpoints, "the emulator's Vertex job reports checkpoints"
    checkpoint = f"{job.name}/checkpoints/{job.checkpoints[0].checkpoint_id}"

    answer = await generate(system, conversation(job.name, "And 3 + 3?"), VERTEX_TENANT)
    from_checkpoint = await generate(system, conversation(checkpoint, "4 + 4?"), VERTEX_TENANT)

    assert_answers(answer, job.name, "And 3 + 3?")
    assert_answers(from_checkpoint, checkpoint, "4 + 4?")
    assert await system.upstream_requests("endpoints.generateContent") == 2


async def test_a_checkpoint_the_job_does_not_list_is_not_found(system: System) -> None:
    job = await trained(system, VERTEX_TENANT, **vertex_fields())
    request = conversation(f"{job.name}/checkpoints/99", "5 + 5?")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await generate(system, request, VERTEX_TENANT)

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await system.upstream_requests("endpoints.generateContent") == 0


async def test_a_tuned_model_streams_its_answer_in_chunks(system: System) -> None:
    job = await trained(system)
    request = conversation(job.name, "What is 5 + 5?")
    stub = generation_service_pb2_grpc.GenerationServiceStub(system.channel)
    whole = await generate(system, request, "team-a")

    call = stub.StreamGenerateContent(request, metadata=system.auth("team-a"), timeout=10)
    chunks = [chunk async for chunk in call]

    assert len(chunks) > 1
    texts = [part.text for chunk in chunks for part in chunk.candidates[0].content.parts]
    assert "".join(texts) == "".join(part.text for part in whole.candidates[0].content.parts)
    assert chunks[-1].candidates[0].finish_reason == STOP
    assert chunks[-1].usage_metadata == whole.usage_metadata
    assert all(chunk.model == job.name for chunk in chunks)
    assert await system.upstream_requests("tunedModels.streamGenerateContent") == 1
