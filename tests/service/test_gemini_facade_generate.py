"""The Gemini API facade's GenerativeService, judged by Google's own generated client.

`glm.GenerativeServiceAsyncClient` (google-ai-generativelanguage, its grpc_asyncio
transport on a channel to the test's API, the platform token as `x-goog-api-key`) calls
a tenant's tuned model, `tunedModels/{id}`, unary and streamed, and meets the refusals:
a name that is no tuned model, what tuning.v1 cannot carry, tuning.v1's bounds under
Google's field paths, another tenant's model, a model not trained yet, the upstream's
429, the caller's deadline (which ends the upstream request). The mapping between the
two APIs' messages is checked to lose nothing of the fields both have, by walking their
descriptors, so a field added to both and not mapped fails.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from google.ai import generativelanguage_v1beta as glm
from google.ai.generativelanguage_v1beta.services.generative_service.transports.grpc_asyncio import (  # noqa: E501
    GenerativeServiceGrpcAsyncIOTransport,
)
from google.api_core import exceptions
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from service.gemini_facade.generate_mapping import google_response, tuning_request
from service.gemini_facade.names import request_id_for
from tests.harness import BASE_MODEL, State, System
from tests.service.test_generate import _slow_generate
from tuning.v1 import generation_service_pb2 as gen
from tuning.v1 import tuning_job_pb2

pytestmark = pytest.mark.timeout(60)
Client = glm.GenerativeServiceAsyncClient
QUESTION = "Please count slowly from one to twenty, one number at a time, then stop."
"""Long enough that the emulator's reply (it echoes it) streams in several chunks."""
UNKNOWN = "tunedModels/never-made"


def client_of(system: System) -> Client:
    """Google's generated client on the system's channel (closing it is the system's)."""
    transport = GenerativeServiceGrpcAsyncIOTransport(channel=system.channel)
    return Client(transport=transport)


def api_key(system: System, tenant: str = "team-a") -> list[tuple[str, str]]:
    return [("x-goog-api-key", system.tenants[tenant].token)]


def ask(model: str, text: str = QUESTION, **fields: Any) -> glm.GenerateContentRequest:
    """One user turn (with Google's usual empty role: "user" is meant)."""
    contents = [glm.Content(parts=[glm.Part(text=text)])]
    return glm.GenerateContentRequest(model=model, contents=contents, **fields)


async def generate(
    system: System, request: glm.GenerateContentRequest, tenant: str = "team-a"
) -> glm.GenerateContentResponse:
    return await client_of(system).generate_content(
        request, metadata=api_key(system, tenant), timeout=10
    )


async def refusal(
    system: System, request: glm.GenerateContentRequest, tenant: str = "team-a"
) -> exceptions.GoogleAPICallError:
    with pytest.raises(exceptions.GoogleAPICallError) as caught:
        await generate(system, request, tenant)
    return caught.value


def violations(error: exceptions.GoogleAPICallError) -> dict[str, str]:
    """The BadRequest field violations Google's client parsed from the status."""
    bad = [d for d in error.details if isinstance(d, error_details_pb2.BadRequest)]
    assert bad, f"no BadRequest in {error!r}"
    return {v.field: v.description for v in bad[0].field_violations}


def text_of(*answers: glm.GenerateContentResponse) -> str:
    return "".join(part.text for a in answers for part in a.candidates[0].content.parts)


# The mapping, field by field: what both APIs have survives each way.

OURS_ALONE = frozenset({"model"})
"""Shared by name but mapped on purpose (`tunedModels/{id}` -> `tuningJobs/{job_id}`)."""


def fill_shared(message: Message, other: Descriptor, numbers: Iterator[int]) -> None:
    """Set every field of `message` that `other` (the twin message of the other API) has
    too, to a distinct value other than its default (two items for a repeated field)."""
    field: Any  # protobuf's Python and upb descriptors alike
    for field in message.DESCRIPTOR.fields:
        twin = other.fields_by_name.get(field.name)
        if twin is None or field.name in OURS_ALONE:
            continue
        for _ in range(2 if field.is_repeated else 1):
            _fill_one(message, field, twin, numbers)


def _fill_one(message: Message, field: Any, twin: Any, numbers: Iterator[int]) -> None:
    holder: Any = getattr(message, field.name)
    if field.message_type is not None:
        item = holder.add() if field.is_repeated else holder
        item.SetInParent()
        fill_shared(item, twin.message_type, numbers)
        return
    value = _sample(field, twin, next(numbers))
    if field.is_repeated:
        holder.append(value)
    else:
        setattr(message, field.name, value)


def _sample(field: Any, twin: Any, n: int) -> object:
    if field.enum_type is not None:  # a number both enums define, not the zero value
        both = sorted(
            set(field.enum_type.values_by_number) & set(twin.enum_type.values_by_number) - {0}
        )
        return both[n % len(both)]
    samples: dict[int, Callable[[], object]] = {
        FieldDescriptor.TYPE_STRING: lambda: f"text {n}",
        FieldDescriptor.TYPE_BOOL: lambda: True,
        FieldDescriptor.TYPE_FLOAT: lambda: n + 0.5,
        FieldDescriptor.TYPE_DOUBLE: lambda: n + 0.5,
        FieldDescriptor.TYPE_INT32: lambda: n,
    }
    return samples[field.type]()


def assert_shared_equal(a: Message, b: Message, path: str = "") -> int:
    """Every field `a` and `b` share holds the same value in both; the number compared
    (so that a comparison of nothing cannot pass)."""
    compared = 0
    for field in a.DESCRIPTOR.fields:
        twin = b.DESCRIPTOR.fields_by_name.get(field.name)
        if twin is None or field.name in OURS_ALONE:
            continue
        here = path + field.name
        left, right = getattr(a, field.name), getattr(b, field.name)
        if field.message_type is None:
            assert list(left) == list(right) if field.is_repeated else left == right, here
            compared += 1
        elif field.is_repeated:
            assert len(left) == len(right), here
            for i, (x, y) in enumerate(zip(left, right, strict=True)):
                compared += assert_shared_equal(x, y, f"{here}[{i}].")
        else:
            assert a.HasField(field.name) == b.HasField(field.name), here
            compared += assert_shared_equal(left, right, f"{here}.")
    return compared


def test_a_request_keeps_every_field_both_apis_have() -> None:
    google = glm.GenerateContentRequest.pb()(model=UNKNOWN)
    fill_shared(google, gen.GenerateContentRequest.DESCRIPTOR, itertools.count(1))

    mapped = tuning_request("team-a", glm.GenerateContentRequest.wrap(google), 100)

    # contents (2 x role, 2 parts), system_instruction likewise, 6 config fields (stop
    # sequences counted once), 2 safety settings of 2 fields.
    assert assert_shared_equal(google, mapped) == 2 * 3 + 3 + 6 + 2 * 2
    assert mapped.model.startswith("tuningJobs/")


def test_an_answer_keeps_every_field_both_apis_have() -> None:
    answer = gen.GenerateContentResponse()
    fill_shared(answer, glm.GenerateContentResponse.pb().DESCRIPTOR, itertools.count(1))

    mapped = glm.GenerateContentResponse.pb(google_response(answer))

    # 2 candidates (index, finish_reason, content: role and 2 parts, 2 ratings of 3),
    # prompt feedback (block reason, 2 ratings of 3), 3 usage counts, the model version.
    assert assert_shared_equal(answer, mapped) == 2 * (2 + 3 + 6) + 7 + 3 + 1


def test_an_explicit_zero_is_sent_and_an_unset_option_is_not() -> None:
    config = glm.GenerationConfig(temperature=0.0)  # greedy, not the model's default

    mapped = tuning_request("team-a", ask(UNKNOWN, generation_config=config), 100)

    sent = mapped.generation_config
    assert [f.name for f, _ in sent.ListFields()] == ["temperature"]
    assert sent.HasField("temperature") and sent.temperature == 0.0


def test_an_empty_role_is_the_users_turn() -> None:
    mapped = tuning_request("team-a", ask(UNKNOWN), 100)

    assert [c.role for c in mapped.contents] == ["user"]


# Refusals before any lookup: names, what cannot be carried, tuning.v1's bounds.


def inline_image() -> glm.Part:
    return glm.Part(inline_data=glm.Blob(mime_type="image/png", data=b"\x89PNG"))


UNCARRIED: list[tuple[Callable[[], glm.GenerateContentRequest], str]] = [
    (lambda: ask(UNKNOWN, tools=[glm.Tool(code_execution=glm.CodeExecution())]), "tools"),
    (lambda: ask(UNKNOWN, cached_content="cachedContents/c1"), "cached_content"),
    (
        lambda: glm.GenerateContentRequest(
            model=UNKNOWN,
            contents=[glm.Content(role="user", parts=[glm.Part(text="look"), inline_image()])],
        ),
        "contents[0].parts[1].inline_data",
    ),
    (
        lambda: ask(UNKNOWN, system_instruction=glm.Content(parts=[inline_image()])),
        "system_instruction.parts[0].inline_data",
    ),
    (
        lambda: ask(UNKNOWN, generation_config=glm.GenerationConfig(seed=7)),
        "generation_config.seed",
    ),
    (
        lambda: ask(
            UNKNOWN, generation_config=glm.GenerationConfig(response_mime_type="application/json")
        ),
        "generation_config.response_mime_type",
    ),
]
BOUNDS: list[tuple[Callable[[], glm.GenerateContentRequest], str]] = [
    (lambda: ask(UNKNOWN, ""), "contents[0].parts[0].text"),
    (
        lambda: ask(UNKNOWN, generation_config=glm.GenerationConfig(top_k=0)),
        "generation_config.top_k",
    ),
    (
        lambda: ask(
            UNKNOWN,
            safety_settings=[
                glm.SafetySetting(
                    category=glm.HarmCategory.HARM_CATEGORY_DEROGATORY,  # PaLM's, not Gemini's
                    threshold=glm.SafetySetting.HarmBlockThreshold.BLOCK_NONE,
                )
            ],
        ),
        "safety_settings[0].category",
    ),
    (
        lambda: glm.GenerateContentRequest(
            model=UNKNOWN, contents=[glm.Content(role="system", parts=[glm.Part(text="x")])]
        ),
        "contents[0].role",
    ),
]
NOT_TUNED_MODELS = [BASE_MODEL, "tunedModels/Not_An_Id", "tuningJobs/j" + "a" * 19, ""]


@pytest.mark.parametrize(("make", "field"), UNCARRIED + BOUNDS)
async def test_each_refusal_names_googles_field_path(
    api_only: System, make: Callable[[], glm.GenerateContentRequest], field: str
) -> None:
    error = await refusal(api_only, make())

    assert isinstance(error, exceptions.InvalidArgument), error
    assert field in violations(error), violations(error)


@pytest.mark.parametrize("model", NOT_TUNED_MODELS)
async def test_a_name_that_is_no_tuned_model_is_invalid(api_only: System, model: str) -> None:
    error = await refusal(api_only, ask(model))

    assert isinstance(error, exceptions.InvalidArgument), error
    assert "tunedModels/{id}" in violations(error)["model"]


async def test_a_call_without_the_api_key_is_unauthenticated(api_only: System) -> None:
    with pytest.raises(exceptions.Unauthenticated):
        await client_of(api_only).generate_content(ask(UNKNOWN), timeout=10)


async def test_another_tenants_model_is_not_found_like_one_never_made(api_only: System) -> None:
    theirs = await api_only.create(tenant="team-b", request_id=request_id_for("theirs"))

    by_id = await refusal(api_only, ask(f"tunedModels/{theirs.name.split('/')[1]}"))
    by_their_id = await refusal(api_only, ask("tunedModels/theirs"))
    missing = await refusal(api_only, ask(UNKNOWN))

    for error in (by_id, by_their_id, missing):
        assert isinstance(error, exceptions.NotFound), error
        assert "tuningJobs/" not in error.message
    assert "tunedModels/theirs" in by_their_id.message


async def test_a_model_still_training_is_failed_precondition_named_as_asked(
    api_only: System,
) -> None:
    await api_only.create(request_id=request_id_for("soon"))

    error = await refusal(api_only, ask("tunedModels/soon"))

    assert isinstance(error, exceptions.FailedPrecondition), error
    # Named as the Gemini API names its states: a job still QUEUED is a CREATING model.
    assert "tunedModels/soon is CREATING" in error.message
    assert "QUEUED" not in error.message


# A tuned model that has SUCCEEDED.


@pytest.fixture
async def trained(system: System) -> AsyncIterator[tuning_job_pb2.TuningJob]:
    """team-a's SUCCEEDED job, made as the facade makes `tunedModels/numbers`."""
    job = await system.create(request_id=request_id_for("numbers"))
    done = await system.finish_training(job.name)
    assert done.state == State.SUCCEEDED, done.error
    yield done


async def test_a_tuned_model_answers_by_either_of_its_names(
    system: System, trained: tuning_job_pb2.TuningJob
) -> None:
    by_id = await generate(system, ask("tunedModels/numbers"))
    by_job_id = await generate(system, ask("tunedModels/" + trained.name.split("/")[1]))

    for answer in (by_id, by_job_id):
        (candidate,) = answer.candidates
        assert QUESTION in text_of(answer)
        assert "emulated reply" in text_of(answer)
        assert candidate.finish_reason == glm.Candidate.FinishReason.STOP
        assert candidate.content.role == "model"
        usage = answer.usage_metadata
        assert usage.prompt_token_count == len(QUESTION.split())
        assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
        assert answer.model_version
    assert await system.upstream_requests("tunedModels.generateContent") == 2


async def test_generation_options_reach_the_model(
    system: System, trained: tuning_job_pb2.TuningJob
) -> None:
    config = glm.GenerationConfig(candidate_count=2, max_output_tokens=3, stop_sequences=["!"])

    answer = await generate(system, ask("tunedModels/numbers", generation_config=config))

    assert [c.index for c in answer.candidates] == [0, 1]
    assert {c.finish_reason for c in answer.candidates} == {glm.Candidate.FinishReason.MAX_TOKENS}
    assert all(len(text_of_candidate(c).split()) == 3 for c in answer.candidates)


def text_of_candidate(candidate: glm.Candidate) -> str:
    return "".join(part.text for part in candidate.content.parts)


async def test_a_blocked_prompt_is_an_answer_with_its_feedback(
    system: System, trained: tuning_job_pb2.TuningJob
) -> None:
    answer = await generate(system, ask("tunedModels/numbers", "[blocked] how?"))

    assert not answer.candidates
    feedback = answer.prompt_feedback
    assert feedback.block_reason == glm.GenerateContentResponse.PromptFeedback.BlockReason.SAFETY
    flagged = [r for r in feedback.safety_ratings if r.blocked]
    assert [r.category for r in flagged] == [glm.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT]


async def test_a_tuned_model_streams_its_answer(
    system: System, trained: tuning_job_pb2.TuningJob
) -> None:
    request = ask("tunedModels/numbers")
    whole = await generate(system, request)

    stream = await client_of(system).stream_generate_content(
        request, metadata=api_key(system), timeout=10
    )
    chunks = [chunk async for chunk in stream]

    assert len(chunks) > 1
    assert text_of(*chunks) == text_of(whole)
    assert chunks[-1].candidates[0].finish_reason == glm.Candidate.FinishReason.STOP
    assert chunks[-1].usage_metadata == whole.usage_metadata
    assert await system.upstream_requests("tunedModels.streamGenerateContent") == 1


async def test_a_stream_is_refused_as_the_unary_call_is(api_only: System) -> None:
    request = ask(UNKNOWN, generation_config=glm.GenerationConfig(seed=1))

    with pytest.raises(exceptions.InvalidArgument) as caught:
        stream = await client_of(api_only).stream_generate_content(
            request, metadata=api_key(api_only), timeout=10
        )
        _ = [chunk async for chunk in stream]

    assert "generation_config.seed" in violations(caught.value)


async def test_the_upstreams_429_is_resource_exhausted_with_its_retry_delay(
    system: System, trained: tuning_job_pb2.TuningJob
) -> None:
    rule = {"route": "tunedModels.generateContent", "status": 429, "retry_delay_s": 7}
    await system.inject_faults(rule)

    error = await refusal(system, ask("tunedModels/numbers"))

    assert isinstance(error, exceptions.ResourceExhausted), error
    (retry,) = [d for d in error.details if isinstance(d, error_details_pb2.RetryInfo)]
    assert retry.retry_delay.seconds == 7


async def test_the_callers_deadline_ends_the_upstream_request(
    system: System, trained: tuning_job_pb2.TuningJob
) -> None:
    async with httpx.AsyncClient(base_url=system.emulator_url, timeout=5.0) as emulator:
        slow = await _slow_generate(system, emulator)
        call = asyncio.create_task(
            client_of(system).generate_content(
                ask("tunedModels/numbers"), metadata=api_key(system), timeout=0.5
            )
        )
        await slow.arrived()

        with pytest.raises(exceptions.DeadlineExceeded):
            await call
        await slow.ended()  # well before the emulator would have answered
