"""Generation on a tuned Vertex endpoint: google-genai, the generated client, plain HTTP.

``google-genai`` in Vertex mode (v1beta1, SSE streams) and the generated
``PredictionServiceClient`` of ``google.cloud.aiplatform_v1`` over REST (v1, JSON-array
streams, enums as numbers) are the judges; plain HTTP checks what only Vertex answers
(``createTime``, harm severity, its own ``HarmCategory`` numbers). The endpoint is the one a
succeeded tuning job deploys. The SDK clients are synchronous, so each call runs in a thread
while the emulator serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import google.oauth2.credentials
import httpx
import pytest
from google import genai
from google.cloud import aiplatform_v1 as aip
from google.cloud.aiplatform_v1.services.prediction_service.transports.rest import (
    PredictionServiceRestTransport,
)
from google.genai import errors, types

from tests.clocks import FakeClock
from tests.emulator.helpers import detail, error_of, inject_faults
from tests.emulator.test_vertex_genai import sdk_client
from tests.emulator.test_vertex_jobs import (
    PENDING_S,
    RUN_S,
    VertexEmulator,
    create_job,
    get_job,
    vertex_emulator,
)
from tests.emulator.test_vertex_resources import PROMPT

T = TypeVar("T")
# google-genai's async client subclasses aiohttp's ClientSession, which aiohttp deprecates.
AIOHTTP_SUBCLASS_WARNING = "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
STREAM_ROUTE = "endpoints.streamGenerateContent"


@pytest.fixture
async def vertex(clock: FakeClock) -> AsyncIterator[VertexEmulator]:
    """An emulator with a 10-example training file at ``TRAINING_URI``."""
    async with vertex_emulator(clock) as emulator:
        emulator.put_file()
        yield emulator


@pytest.fixture
async def endpoint(vertex: VertexEmulator) -> str:
    """The endpoint name of a tuning job run to success."""
    name = (await create_job(vertex))["name"]
    vertex.clock.advance(PENDING_S + RUN_S)
    endpoint: str = (await get_job(vertex, name))["tunedModel"]["endpoint"]
    return endpoint


@pytest.fixture
async def client(vertex: VertexEmulator) -> genai.Client:
    """google-genai in Vertex mode, with an access token from the emulator's ``/token``."""
    return await sdk_client(vertex)


@pytest.fixture
async def prediction(vertex: VertexEmulator) -> aip.PredictionServiceClient:
    """The generated PredictionServiceClient over REST."""
    token = (await vertex.headers())["Authorization"].removeprefix("Bearer ")
    credentials = google.oauth2.credentials.Credentials(token=token)  # type: ignore[no-untyped-call]
    transport = PredictionServiceRestTransport(
        host=vertex.url.removeprefix("http://"), credentials=credentials, url_scheme="http"
    )
    return aip.PredictionServiceClient(transport=transport)


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking SDK call off the event loop that serves the emulator."""
    return await asyncio.to_thread(function, *args, **kwargs)


def stream(client: genai.Client, endpoint: str, contents: Any, **config: Any) -> Callable[[], Any]:
    """A blocking function that collects a google-genai stream into a list."""
    settings = types.GenerateContentConfig(**config)

    def collect() -> list[types.GenerateContentResponse]:
        chunks = client.models.generate_content_stream(
            model=endpoint, contents=contents, config=settings
        )
        return list(chunks)

    return collect


async def test_genai_generates_on_the_endpoint_with_config(
    client: genai.Client, endpoint: str
) -> None:
    config = types.GenerateContentConfig(
        system_instruction="Answer with numbers.", temperature=0.5, candidate_count=3
    )
    turns = [
        types.Content(role="user", parts=[types.Part(text="six")]),
        types.Content(role="model", parts=[types.Part(text="seven")]),
        types.Content(role="user", parts=[types.Part(text="and then?")]),
    ]

    answer = await call(
        client.models.generate_content, model=endpoint, contents=turns, config=config
    )

    assert answer.text is not None and answer.text.endswith("You said: and then?")
    assert answer.candidates is not None and [c.index for c in answer.candidates] == [0, 1, 2]
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    usage = answer.usage_metadata
    assert usage is not None and usage.prompt_token_count == 3 + 1 + 1 + 2
    assert answer.create_time is not None and answer.create_time.tzinfo is not None
    assert answer.response_id and answer.model_version == endpoint


async def test_genai_streams_the_answer_in_chunks(client: genai.Client, endpoint: str) -> None:
    whole = await call(client.models.generate_content, model=endpoint, contents="seven")

    chunks = await call(stream(client, endpoint, "seven"))

    assert len(chunks) >= 3
    assert "".join(chunk.text or "" for chunk in chunks) == whole.text
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata is not None and whole.usage_metadata is not None
    assert chunks[-1].usage_metadata.total_token_count == whole.usage_metadata.total_token_count
    assert all(chunk.usage_metadata is None for chunk in chunks[:-1])


async def test_genai_sees_the_cuts_in_a_stream(client: genai.Client, endpoint: str) -> None:
    whole = await call(client.models.generate_content, model=endpoint, contents="seven")

    cut = await call(stream(client, endpoint, "seven", max_output_tokens=5))
    stopped = await call(stream(client, endpoint, "seven", stop_sequences=["; no model"]))

    assert whole.text is not None
    assert "".join(chunk.text or "" for chunk in cut) == " ".join(whole.text.split()[:5])
    assert cut[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert cut[-1].usage_metadata.candidates_token_count == 5
    assert "".join(chunk.text or "" for chunk in stopped) == f"[emulated reply from {endpoint}"
    assert stopped[-1].candidates[0].finish_reason == types.FinishReason.STOP


async def test_genai_surfaces_a_blocked_prompt(client: genai.Client, endpoint: str) -> None:
    answer = await call(client.models.generate_content, model=endpoint, contents="[blocked]")
    chunks = await call(stream(client, endpoint, "[blocked]"))

    assert not answer.candidates and answer.text is None
    assert answer.prompt_feedback is not None
    assert answer.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert len(chunks) == 1
    assert chunks[0].prompt_feedback.block_reason == types.BlockedReason.SAFETY


async def test_genai_sees_an_unsafe_answer_unless_let_through(
    client: genai.Client, endpoint: str
) -> None:
    let_through = types.SafetySetting(
        category=types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT,
        threshold=types.HarmBlockThreshold.OFF,
        method=types.HarmBlockMethod.PROBABILITY,
    )
    prompt = "[unsafe-answer]"

    refused = await call(client.models.generate_content, model=endpoint, contents=prompt)
    allowed = await call(
        client.models.generate_content,
        model=endpoint,
        contents=prompt,
        config=types.GenerateContentConfig(safety_settings=[let_through]),
    )

    assert refused.candidates is not None and refused.text is None
    assert refused.candidates[0].finish_reason == types.FinishReason.SAFETY
    ratings = refused.candidates[0].safety_ratings or []
    assert {r.severity for r in ratings} == {
        types.HarmSeverity.HARM_SEVERITY_NEGLIGIBLE,
        types.HarmSeverity.HARM_SEVERITY_HIGH,
    }
    assert allowed.text is not None and "You said: [unsafe-answer]" in allowed.text


async def test_genai_raises_a_client_error_for_a_bad_config(
    client: genai.Client, endpoint: str
) -> None:
    config = types.GenerateContentConfig(candidate_count=9)

    with pytest.raises(errors.ClientError) as raised:
        await call(client.models.generate_content, model=endpoint, contents="x", config=config)

    assert raised.value.code == 400
    assert raised.value.message is not None and "candidateCount" in raised.value.message


async def test_genai_raises_the_429_of_a_fault_rule(
    client: genai.Client, endpoint: str, vertex: VertexEmulator
) -> None:
    await inject_faults(vertex.http, {"route": STREAM_ROUTE, "status": 429})

    with pytest.raises(errors.ClientError) as raised:
        await call(stream(client, endpoint, "x"))

    assert raised.value.code == 429


async def test_generated_client_streams_with_int_enums(
    prediction: aip.PredictionServiceClient, endpoint: str
) -> None:
    request = aip.GenerateContentRequest(
        model=endpoint,
        contents=[aip.Content(role="user", parts=[aip.Part(text="seven")])],
        generation_config=aip.GenerationConfig(candidate_count=2),
        safety_settings=[
            aip.SafetySetting(
                category=aip.HarmCategory.HARM_CATEGORY_HARASSMENT,
                threshold=aip.SafetySetting.HarmBlockThreshold.BLOCK_ONLY_HIGH,
            )
        ],
    )
    whole = await call(prediction.generate_content, request=request)

    chunks = await call(lambda: list(prediction.stream_generate_content(request=request)))

    assert [c.index for c in whole.candidates] == [0, 1]
    texts = ["".join(p.text for c in chunks for p in c.candidates[0].content.parts)]
    assert texts == [whole.candidates[0].content.parts[0].text]
    last = chunks[-1].candidates[0]
    assert last.finish_reason == aip.Candidate.FinishReason.STOP
    categories = {rating.category for rating in last.safety_ratings}
    assert aip.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT in categories
    assert chunks[-1].usage_metadata.total_token_count == whole.usage_metadata.total_token_count
    assert whole.create_time is not None


async def test_http_stream_on_v1_answers_vertex_fields(
    vertex: VertexEmulator, endpoint: str
) -> None:
    response = await vertex.http.post(
        f"/v1/{endpoint}:streamGenerateContent",
        params={"$alt": "json;enum-encoding=int"},
        json=PROMPT,
        headers=await vertex.headers(),
    )

    chunks = json.loads(response.text)
    assert response.text.startswith("[{") and response.text.endswith("}\n]")
    assert {chunk["createTime"] for chunk in chunks} == {"2026-11-21T13:40:08.000000Z"}
    ratings = chunks[-1]["candidates"][0]["safetyRatings"]
    assert {r["category"] for r in ratings} == {1, 2, 3, 4}  # Vertex's HarmCategory numbers
    assert {r["severity"] for r in ratings} == {1}


async def test_http_cut_stream_on_the_endpoint(vertex: VertexEmulator, endpoint: str) -> None:
    await inject_faults(vertex.http, {"route": STREAM_ROUTE, "cut_after_chunks": 1})

    with pytest.raises(httpx.RemoteProtocolError):
        await vertex.http.post(
            f"/v1beta1/{endpoint}:streamGenerateContent",
            params={"alt": "sse"},
            json=PROMPT,
            headers=await vertex.headers(),
        )


async def test_http_vertex_safety_method_is_validated(
    vertex: VertexEmulator, endpoint: str
) -> None:
    setting = {"category": "HARM_CATEGORY_JAILBREAK", "threshold": "OFF", "method": "BY_VIBES"}

    response = await vertex.http.post(
        f"/v1/{endpoint}:generateContent",
        json=PROMPT | {"safetySettings": [setting]},
        headers=await vertex.headers(),
    )

    error = error_of(response)
    assert response.status_code == 400
    assert "google.cloud.aiplatform.v1.SafetySetting.HarmBlockMethod" in error["message"]
    violation = detail(error, "google.rpc.BadRequest")["fieldViolations"][0]
    assert violation["field"] == "safety_settings[0].method"


@pytest.mark.filterwarnings(AIOHTTP_SUBCLASS_WARNING)
async def test_genai_async_client_streams_on_the_same_loop(
    client: genai.Client, endpoint: str
) -> None:
    whole = await client.aio.models.generate_content(model=endpoint, contents="seven")

    texts = [
        chunk.text or ""
        async for chunk in await client.aio.models.generate_content_stream(
            model=endpoint, contents="seven"
        )
    ]

    assert len(texts) >= 3 and "".join(texts) == whole.text


@pytest.mark.filterwarnings(AIOHTTP_SUBCLASS_WARNING)
async def test_genai_async_caller_can_leave_a_slow_stream_early(
    client: genai.Client, endpoint: str, vertex: VertexEmulator
) -> None:
    delay_s = 5.0
    await inject_faults(vertex.http, {"route": STREAM_ROUTE, "chunk_delay_s": delay_s})
    started_s = time.monotonic()

    chunks = await client.aio.models.generate_content_stream(model=endpoint, contents="seven")
    first = await anext(aiter(chunks))
    await client.aio.aclose()  # hangs up: the emulator stops its stream within a poll

    assert first.text is not None and first.text.startswith("[emulated")
    assert time.monotonic() - started_s < delay_s
