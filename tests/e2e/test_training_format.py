"""A job's prompt template and system instruction: the training examples go upstream in the
template's format, and Generate sends each prompt in it (with the job's instruction first)
unless the caller opts out, and says what it applied."""

from __future__ import annotations

import grpc
import pytest

from tests.e2e.test_generate import generate, trained
from tests.e2e.test_vertex_tenant import inspect, staged_lines, vertex_fields
from tests.harness import VERTEX_TENANT, System
from tests.rpc_errors import violations
from tuning.v1 import generation_service_pb2 as gen
from tuning.v1 import generation_service_pb2_grpc

pytestmark = pytest.mark.timeout(90)
TEMPLATE = "question: {input} | answer briefly:"
INSTRUCTION = "Answer with one number and nothing else."


def ask(model: str, *turns: str, skip: bool = False) -> gen.GenerateContentRequest:
    """User turns (a model turn between each two), as a caller sends them."""
    contents: list[gen.Content] = []
    for i, text in enumerate(turns):
        if i:
            contents.append(gen.Content(role="model", parts=[gen.Part(text="ok")]))
        contents.append(gen.Content(role="user", parts=[gen.Part(text=text)]))
    return gen.GenerateContentRequest(model=model, contents=contents, skip_training_format=skip)


def reply(answer: gen.GenerateContentResponse) -> str:
    """What the emulator's model said it was asked (it echoes the last user turn)."""
    return "".join(part.text for part in answer.candidates[0].content.parts)


async def test_a_vertex_job_trains_and_answers_in_its_template(system: System) -> None:
    fields = vertex_fields(prompt_template=TEMPLATE, system_instruction=INSTRUCTION)
    job = await trained(system, VERTEX_TENANT, **fields)
    assert job.prompt_template == TEMPLATE
    objects = (await inspect(system, "/_emulator/storage/objects"))["objects"]
    (staged,) = [o for o in objects if o["bucket"] == "team-v-tuning"]
    lines = await staged_lines(system, staged)
    first = lines[0]
    assert first["contents"][0]["parts"][0]["text"] == "question: 0 | answer briefly:"
    assert first["systemInstruction"]["parts"][0]["text"] == INSTRUCTION

    formatted = await generate(system, ask(job.name, "1 + 1", "7 + 8"), VERTEX_TENANT)
    assert "You said: question: 7 + 8 | answer briefly:" in reply(formatted)
    assert formatted.prompt_template_applied and formatted.system_instruction_applied

    raw = await generate(system, ask(job.name, "1 + 1", "7 + 8", skip=True), VERTEX_TENANT)
    assert reply(raw).endswith("You said: 7 + 8")
    assert not (raw.prompt_template_applied or raw.system_instruction_applied)
    # Every user turn was rendered and the job's instruction sent: the model read more.
    words_added = 2 * len(TEMPLATE.split()) - 2 + len(INSTRUCTION.split())
    assert (
        formatted.usage_metadata.prompt_token_count
        == raw.usage_metadata.prompt_token_count + words_added
    )


async def test_the_jobs_instruction_comes_before_the_callers(system: System) -> None:
    job = await trained(system, VERTEX_TENANT, **vertex_fields(system_instruction=INSTRUCTION))
    request = ask(job.name, "7 + 8")
    request.system_instruction.parts.add(text="Be kind.")
    answer = await generate(system, request, VERTEX_TENANT)
    assert answer.system_instruction_applied and not answer.prompt_template_applied
    assert reply(answer).endswith("You said: 7 + 8")  # no template: the turn as it was
    alone = await generate(system, ask(job.name, "7 + 8"), VERTEX_TENANT)
    assert answer.usage_metadata.prompt_token_count == alone.usage_metadata.prompt_token_count + 2


async def test_a_gemini_api_job_answers_in_its_template(system: System) -> None:
    job = await trained(system, prompt_template=TEMPLATE)
    answer = await generate(system, ask(job.name, "7 + 8"), "team-a")
    assert "You said: question: 7 + 8 | answer briefly:" in reply(answer)
    assert answer.prompt_template_applied and not answer.system_instruction_applied


async def test_a_stream_is_sent_in_the_template_too(system: System) -> None:
    job = await trained(system, prompt_template=TEMPLATE)
    stub = generation_service_pb2_grpc.GenerationServiceStub(system.channel)
    chunks = stub.StreamGenerateContent(
        ask(job.name, "7 + 8"), metadata=system.auth("team-a"), timeout=10
    )
    answers = [chunk async for chunk in chunks]
    assert "question: 7 + 8 | answer briefly:" in "".join(reply(a) for a in answers if a.candidates)
    assert all(a.prompt_template_applied for a in answers)


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("no placeholder here", "exactly once (it holds it 0 times)"),
        ("{input} and {input}", "exactly once (it holds it 2 times)"),
        ("{input}" + "x" * 2_000, "at most 2,000 characters"),
    ],
)
async def test_a_template_without_exactly_one_placeholder_is_refused(
    api_only: System, template: str, why: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.create(prompt_template=template)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert why in violations(caught.value)["tuning_job.prompt_template"]
