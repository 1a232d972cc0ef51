"""Google's SDKs generate on a tuned model of the Gemini API, unary and streamed.

Two judges: ``google-genai`` (its Gemini API mode, which streams with ``alt=sse``) and the
generated ``GenerativeServiceClient`` of ``google-ai-generativelanguage`` over REST (which
streams a JSON array and sends enums as numbers). Each parses the emulator's answers into its
own types; the tests assert on what it returns. ``google-generativeai`` is not installed in
this environment, so it does not judge here.

google-genai in Gemini API mode authenticates with an API key, which the emulator does not
take: the client is given a placeholder key and the emulator's bearer token as a header.
The clients are synchronous, so each call runs in a thread while the emulator serves on the
test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import google.oauth2.credentials
import httpx
import pytest
from google import genai
from google.ai import generativelanguage_v1beta as glm
from google.ai.generativelanguage_v1beta.services.generative_service.transports.rest import (
    GenerativeServiceRestTransport,
)
from google.api_core import exceptions
from google.genai import errors, types

from tests.clocks import FakeClock
from tests.emulator.helpers import create_model, inject_faults

T = TypeVar("T")
MODEL = "tunedModels/gen"


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking SDK call off the event loop that serves the emulator."""
    return await asyncio.to_thread(function, *args, **kwargs)


@pytest.fixture
async def active(http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock) -> None:
    """The owner's tuned model ``gen``, trained to ACTIVE."""
    await create_model(http, owner, "gen")
    clock.advance(60.0)


@pytest.fixture
def genai_client(emulator_url: str, owner: dict[str, str]) -> genai.Client:
    """google-genai in Gemini API mode against the emulator."""
    options = types.HttpOptions(base_url=emulator_url, headers=owner)
    return genai.Client(api_key="unused-by-the-emulator", http_options=options)


@pytest.fixture
def glm_client(emulator_url: str, owner: dict[str, str]) -> glm.GenerativeServiceClient:
    """The generated GenerativeServiceClient over REST with the owner's token."""
    token = owner["Authorization"].removeprefix("Bearer ")
    credentials = google.oauth2.credentials.Credentials(token=token)  # type: ignore[no-untyped-call]
    transport = GenerativeServiceRestTransport(
        host=emulator_url.removeprefix("http://"), credentials=credentials, url_scheme="http"
    )
    return glm.GenerativeServiceClient(transport=transport)


def glm_request(text: str = "seven", **config: Any) -> glm.GenerateContentRequest:
    """One user turn of ``text`` to ``gen``, with a generation config."""
    return glm.GenerateContentRequest(
        model=MODEL,
        contents=[glm.Content(role="user", parts=[glm.Part(text=text)])],
        generation_config=glm.GenerationConfig(**config),
    )


@pytest.mark.usefixtures("active")
async def test_genai_generates_with_config_and_usage(genai_client: genai.Client) -> None:
    config = types.GenerateContentConfig(
        system_instruction="Count.", temperature=0.2, top_p=0.9, top_k=20, candidate_count=2
    )

    answer = await call(
        genai_client.models.generate_content, model=MODEL, contents="seven", config=config
    )

    assert answer.candidates is not None and [c.index for c in answer.candidates] == [0, 1]
    assert answer.text is not None and answer.text.endswith("You said: seven")
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    usage = answer.usage_metadata
    assert usage is not None and usage.prompt_token_count == 2
    assert usage.total_token_count == 2 + (usage.candidates_token_count or 0)
    assert answer.model_version == MODEL
    assert answer.response_id


@pytest.mark.usefixtures("active")
async def test_genai_streams_the_same_text_in_chunks(genai_client: genai.Client) -> None:
    whole = await call(genai_client.models.generate_content, model=MODEL, contents="seven")

    def streamed() -> list[types.GenerateContentResponse]:
        return list(genai_client.models.generate_content_stream(model=MODEL, contents="seven"))

    chunks = await call(streamed)

    assert len(chunks) >= 3
    assert "".join(chunk.text or "" for chunk in chunks) == whole.text
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert [chunk.usage_metadata is not None for chunk in chunks][-2:] == [False, True]


@pytest.mark.usefixtures("active")
async def test_genai_sees_max_tokens_and_stop_sequences(genai_client: genai.Client) -> None:
    short = types.GenerateContentConfig(max_output_tokens=2)
    stopped = types.GenerateContentConfig(stop_sequences=["reply"])

    cut = await call(genai_client.models.generate_content, model=MODEL, contents="x", config=short)
    stop = await call(
        genai_client.models.generate_content, model=MODEL, contents="x", config=stopped
    )

    assert cut.candidates is not None and cut.text == "[emulated reply"
    assert cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert stop.text == "[emulated "


@pytest.mark.usefixtures("active")
async def test_genai_surfaces_a_blocked_prompt(genai_client: genai.Client) -> None:
    answer = await call(
        genai_client.models.generate_content, model=MODEL, contents="do [blocked] things"
    )

    assert not answer.candidates
    assert answer.text is None
    assert answer.prompt_feedback is not None
    assert answer.prompt_feedback.block_reason == types.BlockedReason.SAFETY


@pytest.mark.usefixtures("active")
async def test_genai_sees_an_unsafe_answer(genai_client: genai.Client) -> None:
    answer = await call(
        genai_client.models.generate_content, model=MODEL, contents="[unsafe-answer]"
    )

    assert answer.candidates is not None
    candidate = answer.candidates[0]
    assert candidate.finish_reason == types.FinishReason.SAFETY
    assert candidate.content is None
    ratings = candidate.safety_ratings or []
    assert [r.category for r in ratings if r.blocked] == [
        types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT
    ]


@pytest.mark.usefixtures("active")
async def test_genai_raises_a_client_error_for_a_bad_safety_setting(
    genai_client: genai.Client,
) -> None:
    setting = types.SafetySetting(
        category=types.HarmCategory.HARM_CATEGORY_IMAGE_HATE,
        threshold=types.HarmBlockThreshold.BLOCK_NONE,
    )
    config = types.GenerateContentConfig(safety_settings=[setting])

    with pytest.raises(errors.ClientError) as raised:
        await call(genai_client.models.generate_content, model=MODEL, contents="x", config=config)

    assert raised.value.code == 400
    assert raised.value.status == "INVALID_ARGUMENT"


@pytest.mark.usefixtures("active")
async def test_genai_raises_the_429_of_a_fault_rule(
    genai_client: genai.Client, http: httpx.AsyncClient
) -> None:
    await inject_faults(
        http, {"route": "tunedModels.streamGenerateContent", "status": 429, "retry_delay_s": 3}
    )

    def streamed() -> list[types.GenerateContentResponse]:
        return list(genai_client.models.generate_content_stream(model=MODEL, contents="x"))

    with pytest.raises(errors.ClientError) as raised:
        await call(streamed)

    assert raised.value.code == 429
    assert raised.value.status == "RESOURCE_EXHAUSTED"


@pytest.mark.usefixtures("active")
async def test_generated_client_generates_with_int_enums(
    glm_client: glm.GenerativeServiceClient,
) -> None:
    answer = await call(glm_client.generate_content, request=glm_request(candidate_count=2))

    assert [c.index for c in answer.candidates] == [0, 1]
    candidate = answer.candidates[0]
    assert candidate.finish_reason == glm.Candidate.FinishReason.STOP
    assert candidate.content.parts[0].text.endswith("You said: seven")
    assert {r.probability for r in candidate.safety_ratings} == {
        glm.SafetyRating.HarmProbability.NEGLIGIBLE
    }
    assert answer.usage_metadata.prompt_token_count == 1


@pytest.mark.usefixtures("active")
async def test_generated_client_parses_the_json_array_stream(
    glm_client: glm.GenerativeServiceClient,
) -> None:
    whole = await call(glm_client.generate_content, request=glm_request())

    def streamed() -> list[glm.GenerateContentResponse]:
        return list(glm_client.stream_generate_content(request=glm_request()))

    chunks = await call(streamed)

    text = "".join(part.text for chunk in chunks for part in chunk.candidates[0].content.parts)
    assert len(chunks) >= 3
    assert text == whole.candidates[0].content.parts[0].text
    assert chunks[-1].candidates[0].finish_reason == glm.Candidate.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count == whole.usage_metadata.total_token_count
    assert chunks[0].usage_metadata.total_token_count == 0


@pytest.mark.usefixtures("active")
async def test_generated_client_sees_max_tokens_in_the_stream(
    glm_client: glm.GenerativeServiceClient,
) -> None:
    def streamed() -> list[glm.GenerateContentResponse]:
        return list(glm_client.stream_generate_content(request=glm_request(max_output_tokens=6)))

    chunks = await call(streamed)

    assert len(chunks) == 2
    assert chunks[-1].candidates[0].finish_reason == glm.Candidate.FinishReason.MAX_TOKENS
    assert chunks[-1].usage_metadata.candidates_token_count == 6


@pytest.mark.usefixtures("active")
async def test_generated_client_surfaces_a_blocked_prompt(
    glm_client: glm.GenerativeServiceClient,
) -> None:
    answer = await call(glm_client.generate_content, request=glm_request("x [blocked]"))

    assert not answer.candidates
    block = glm.GenerateContentResponse.PromptFeedback.BlockReason.SAFETY
    assert answer.prompt_feedback.block_reason == block


@pytest.mark.usefixtures("active")
async def test_generated_client_sends_safety_settings_as_numbers(
    glm_client: glm.GenerativeServiceClient,
) -> None:
    request = glm_request("[blocked]")
    request.safety_settings = [
        glm.SafetySetting(
            category=glm.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT,
            threshold=glm.SafetySetting.HarmBlockThreshold.OFF,
        )
    ]

    answer = await call(glm_client.generate_content, request=request)

    assert answer.candidates[0].finish_reason == glm.Candidate.FinishReason.STOP


@pytest.mark.usefixtures("active")
async def test_generated_client_raises_bad_request_for_a_bad_config(
    glm_client: glm.GenerativeServiceClient,
) -> None:
    with pytest.raises(exceptions.BadRequest):
        await call(glm_client.generate_content, request=glm_request(temperature=3.0))
