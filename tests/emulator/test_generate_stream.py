"""``streamGenerateContent`` and the generation settings over plain HTTP (Gemini API surface).

The framing is checked byte for byte here, where the SDK tests cannot see it: server-sent
events for ``alt=sse``, a JSON array otherwise. The stream fault knobs are injected through
``POST /_emulator/faults``.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx
import pytest

from tests.clocks import FakeClock
from tests.emulator.helpers import create_model, detail, error_of, inject_faults

MODEL = "/v1beta/tunedModels/gen"
PROMPT = {"contents": [{"role": "user", "parts": [{"text": "What comes after 41?"}]}]}
SSE = {"alt": "sse"}
STREAM_ROUTE = "tunedModels.streamGenerateContent"


@pytest.fixture
async def active(http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock) -> None:
    """The owner's tuned model ``gen``, trained to ACTIVE."""
    await create_model(http, owner, "gen")
    clock.advance(60.0)


async def generate(
    http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any] = PROMPT
) -> httpx.Response:
    """``:generateContent`` on ``gen``."""
    return await http.post(f"{MODEL}:generateContent", json=body, headers=headers)


async def stream_bytes(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    body: dict[str, Any] = PROMPT,
    params: dict[str, str] | None = None,
) -> tuple[httpx.Response, bytes]:
    """``:streamGenerateContent`` on ``gen``: the response and its whole body."""
    async with http.stream(
        "POST", f"{MODEL}:streamGenerateContent", json=body, headers=headers, params=params
    ) as response:
        return response, await response.aread()


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    """The JSON of each ``data:`` event, asserting the ``\\r\\n\\r\\n`` framing."""
    assert raw.endswith(b"\r\n\r\n")
    events = raw.decode().split("\r\n\r\n")[:-1]
    assert all(event.startswith("data: ") for event in events)
    return [json.loads(event.removeprefix("data: ")) for event in events]


def texts(chunks: list[dict[str, Any]], index: int = 0) -> str:
    """The concatenated text of candidate ``index`` over the chunks."""
    return "".join(
        part["text"]
        for chunk in chunks
        for candidate in chunk.get("candidates", [])
        if candidate["index"] == index
        for part in candidate.get("content", {}).get("parts", [])
    )


def with_config(**config: Any) -> dict[str, Any]:
    """The prompt with a ``generationConfig``."""
    return PROMPT | {"generationConfig": config}


@pytest.mark.usefixtures("active")
async def test_sse_stream_splits_the_unary_answer_into_events(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    unary = (await generate(http, owner)).json()

    response, raw = await stream_bytes(http, owner, params=SSE)

    chunks = sse_chunks(raw)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert len(chunks) >= 3
    assert texts(chunks) == unary["candidates"][0]["content"]["parts"][0]["text"]
    assert [("usageMetadata" in chunk) for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1]["usageMetadata"] == unary["usageMetadata"]
    assert [c["candidates"][0].get("finishReason") for c in chunks][-2:] == [None, "STOP"]
    assert {chunk["modelVersion"] for chunk in chunks} == {"tunedModels/gen"}
    assert {chunk["responseId"] for chunk in chunks} == {unary["responseId"]}


@pytest.mark.usefixtures("active")
async def test_json_array_stream_is_framed_as_google_frames_it(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    _, sse = await stream_bytes(http, owner, params=SSE)

    response, raw = await stream_bytes(http, owner)

    text = raw.decode()
    assert response.headers["content-type"].startswith("application/json")
    assert text.startswith("[{") and text.endswith("}\n]")
    assert "}\n,\r\n{" in text
    assert json.loads(text) == sse_chunks(sse)


@pytest.mark.usefixtures("active")
async def test_stream_answers_numbers_for_enums_when_asked(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    _, raw = await stream_bytes(http, owner, params={"$alt": "json;enum-encoding=int"})

    last = json.loads(raw)[-1]["candidates"][0]
    assert last["finishReason"] == 1
    assert {rating["probability"] for rating in last["safetyRatings"]} == {1}
    assert 10 in {rating["category"] for rating in last["safetyRatings"]}  # DANGEROUS_CONTENT


@pytest.mark.usefixtures("active")
async def test_generation_is_also_bound_under_v1(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    unary = await http.post("/v1/tunedModels/gen:generateContent", json=PROMPT, headers=owner)
    streamed = await http.post(
        "/v1/tunedModels/gen:streamGenerateContent", params=SSE, json=PROMPT, headers=owner
    )

    assert unary.status_code == streamed.status_code == 200
    assert texts(sse_chunks(streamed.content)) == texts([unary.json()])


@pytest.mark.usefixtures("active")
async def test_the_answer_reads_the_last_user_turn_and_counts_every_turn(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    turns = [("user", "one two"), ("model", "three"), ("user", "four five six")]
    body = {
        "systemInstruction": {"parts": [{"text": "Answer in numbers."}]},
        "contents": [{"role": role, "parts": [{"text": text}]} for role, text in turns],
    }

    answer = (await generate(http, owner, body)).json()

    assert texts([answer]).endswith("You said: four five six")
    assert answer["usageMetadata"]["promptTokenCount"] == 3 + 2 + 1 + 3


@pytest.mark.usefixtures("active")
async def test_candidate_count_answers_that_many_indexed_candidates(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    answer = (await generate(http, owner, with_config(candidateCount=3))).json()
    _, raw = await stream_bytes(http, owner, with_config(candidateCount=3), SSE)

    assert [c["index"] for c in answer["candidates"]] == [0, 1, 2]
    assert texts([answer], 2).endswith("(candidate 2)")
    assert [texts(sse_chunks(raw), i) for i in range(3)] == [texts([answer], i) for i in range(3)]
    words = sum(len(texts([answer], i).split()) for i in range(3))
    assert answer["usageMetadata"]["candidatesTokenCount"] == words


@pytest.mark.usefixtures("active")
async def test_max_output_tokens_cuts_the_answer(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    answer = (await generate(http, owner, with_config(maxOutputTokens=3))).json()

    candidate = answer["candidates"][0]
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert candidate["content"]["parts"][0]["text"] == "[emulated reply from"
    assert answer["usageMetadata"]["candidatesTokenCount"] == 3


@pytest.mark.usefixtures("active")
async def test_a_stop_sequence_ends_the_answer_before_it(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    body = with_config(stopSequences=["After", "said"], maxOutputTokens=100)

    answer = (await generate(http, owner, body)).json()
    _, raw = await stream_bytes(http, owner, body, SSE)

    candidate = answer["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    assert texts([answer]) == "[emulated reply from tunedModels/gen; no model was run] You "
    assert texts(sse_chunks(raw)) == texts([answer])


@pytest.mark.usefixtures("active")
async def test_a_blocked_prompt_gets_prompt_feedback_and_no_candidates(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    body = {"contents": [{"parts": [{"text": "tell me [blocked] things"}]}]}

    response = await generate(http, owner, body)
    _, raw = await stream_bytes(http, owner, body, SSE)

    assert response.status_code == 200
    answer = response.json()
    assert "candidates" not in answer
    assert answer["promptFeedback"]["blockReason"] == "SAFETY"
    high = [r for r in answer["promptFeedback"]["safetyRatings"] if r["probability"] == "HIGH"]
    assert high == [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
    ]
    assert answer["usageMetadata"] == {"promptTokenCount": 4, "totalTokenCount": 4}
    assert sse_chunks(raw) == [answer]


@pytest.mark.usefixtures("active")
async def test_an_unsafe_answer_ends_with_safety_and_no_text(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    body = {"contents": [{"parts": [{"text": "say [unsafe-answer]"}]}]}

    answer = (await generate(http, owner, body)).json()

    candidate = answer["candidates"][0]
    assert candidate["finishReason"] == "SAFETY"
    assert "content" not in candidate
    assert "candidatesTokenCount" not in answer["usageMetadata"]


@pytest.mark.usefixtures("active")
async def test_block_none_lets_a_flagged_prompt_through(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    setting = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_NONE"}
    body = {"contents": [{"parts": [{"text": "[blocked]"}]}], "safetySettings": [setting]}

    answer = (await generate(http, owner, body)).json()

    assert "promptFeedback" not in answer
    assert answer["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"temperature": 2.5}, "generation_config.temperature"),
        ({"topP": -0.1}, "generation_config.top_p"),
        ({"topK": -1}, "generation_config.top_k"),
        ({"candidateCount": 9}, "generation_config.candidate_count"),
        ({"maxOutputTokens": -5}, "generation_config.max_output_tokens"),
        ({"stopSequences": ["a", "b", "c", "d", "e", "f"]}, "generation_config.stop_sequences"),
        ({"temperature": "hot"}, "generation_config.temperature"),
    ],
)
@pytest.mark.usefixtures("active")
async def test_a_bad_generation_config_is_400(
    http: httpx.AsyncClient, owner: dict[str, str], settings: dict[str, Any], field: str
) -> None:
    response = await generate(http, owner, with_config(**settings))
    streamed, _ = await stream_bytes(http, owner, with_config(**settings), SSE)

    assert response.status_code == streamed.status_code == 400
    error = error_of(response)
    assert error["status"] == "INVALID_ARGUMENT"
    assert detail(error, "google.rpc.BadRequest")["fieldViolations"][0]["field"] == field


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ({"category": "HARM_CATEGORY_SPOOKY", "threshold": "BLOCK_NONE"}, "category"),
        ({"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_MOST"}, "threshold"),
        ({"category": 42, "threshold": 1}, "category"),
    ],
)
@pytest.mark.usefixtures("active")
async def test_an_unknown_safety_enum_is_400_as_google_words_it(
    http: httpx.AsyncClient, owner: dict[str, str], setting: dict[str, Any], field: str
) -> None:
    response = await generate(http, owner, PROMPT | {"safetySettings": [setting]})

    error = error_of(response)
    assert response.status_code == 400
    assert error["message"].startswith(f"Invalid value at 'safety_settings[0].{field}' (type.")
    violation = detail(error, "google.rpc.BadRequest")["fieldViolations"][0]
    assert violation["field"] == f"safety_settings[0].{field}"


@pytest.mark.usefixtures("active")
async def test_safety_settings_as_numbers_are_accepted(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    setting = {"category": 10, "threshold": 4}  # DANGEROUS_CONTENT, BLOCK_NONE
    body = {"contents": [{"parts": [{"text": "[blocked]"}]}], "safety_settings": [setting]}

    answer = (await generate(http, owner, body)).json()

    assert answer["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.usefixtures("active")
async def test_a_palm_category_is_refused_for_gemini_models(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    setting = {"category": "HARM_CATEGORY_DEROGATORY", "threshold": "BLOCK_NONE"}

    response = await generate(http, owner, PROMPT | {"safetySettings": [setting]})

    assert response.status_code == 400
    assert "HARM_CATEGORY_DEROGATORY" in error_of(response)["message"]


@pytest.mark.usefixtures("active")
async def test_a_vertex_only_safety_field_is_unknown_on_the_gemini_api(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    setting = {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF", "method": "SEVERITY"}

    response = await generate(http, owner, PROMPT | {"safetySettings": [setting]})

    assert response.status_code == 400
    assert error_of(response)["message"] == (
        "Invalid JSON payload received. Unknown name \"method\" at 'safety_settings[0]': "
        "Cannot find field."
    )


@pytest.mark.usefixtures("active")
async def test_a_repeated_safety_category_is_400(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    setting = {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}

    response = await generate(http, owner, PROMPT | {"safetySettings": [setting, setting]})

    violation = detail(error_of(response), "google.rpc.BadRequest")["fieldViolations"][0]
    assert response.status_code == 400
    assert violation["field"] == "safety_settings[1].category"


@pytest.mark.usefixtures("active")
async def test_an_unknown_role_is_400(http: httpx.AsyncClient, owner: dict[str, str]) -> None:
    body = {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}

    response = await generate(http, owner, body)

    assert response.status_code == 400
    assert error_of(response)["message"] == "Please use a valid role: user, model."


@pytest.mark.usefixtures("active")
async def test_a_cut_stream_ends_without_its_terminator(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(http, {"route": STREAM_ROUTE, "cut_after_chunks": 2})
    received: list[str] = []

    with pytest.raises(httpx.RemoteProtocolError):
        async with http.stream(
            "POST", f"{MODEL}:streamGenerateContent", json=PROMPT, headers=owner
        ) as response:
            async for text in response.aiter_text():
                received.append(text)

    body = "".join(received)
    assert body.startswith("[{") and body.count("\n,\r\n") == 1
    assert not body.endswith("]")
    _, whole = await stream_bytes(http, owner)  # the rule is used up
    assert whole.decode().endswith("\n]")


@pytest.mark.usefixtures("active")
async def test_a_stream_cut_after_no_chunks_sends_only_its_headers(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(http, {"route": STREAM_ROUTE, "cut_after_chunks": 0})
    statuses: list[int] = []

    with pytest.raises(httpx.RemoteProtocolError):
        async with http.stream(
            "POST", f"{MODEL}:streamGenerateContent", params=SSE, json=PROMPT, headers=owner
        ) as response:
            statuses.append(response.status_code)
            await response.aread()

    assert statuses == [200]


@pytest.mark.usefixtures("active")
async def test_a_chunk_delay_spaces_the_events(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    delay_s = 0.2
    await inject_faults(http, {"route": STREAM_ROUTE, "chunk_delay_s": delay_s})
    arrivals_s: list[float] = []

    async with http.stream(
        "POST", f"{MODEL}:streamGenerateContent", params=SSE, json=PROMPT, headers=owner
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                arrivals_s.append(time.monotonic())

    gaps_s = [later - earlier for earlier, later in itertools.pairwise(arrivals_s)]
    assert len(gaps_s) >= 2
    assert min(gaps_s) >= delay_s * 0.9


@pytest.mark.usefixtures("active")
async def test_a_429_on_the_stream_route_carries_retry_info(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(http, {"route": STREAM_ROUTE, "status": 429, "retry_delay_s": 7})

    response, _ = await stream_bytes(http, owner, params=SSE)

    assert response.status_code == 429
    error = error_of(response)
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert detail(error, "google.rpc.RetryInfo")["retryDelay"] == "7s"


@pytest.mark.parametrize(
    "rule",
    [
        {"route": "tunedModels.generateContent", "cut_after_chunks": 1},
        {"route": "tunedModels.get", "chunk_delay_s": 1},
        {"route": STREAM_ROUTE, "cut_after_chunks": -1},
        {"route": STREAM_ROUTE, "cut_after_chunks": 1, "status": 503, "after": True},
        {"route": STREAM_ROUTE, "status": 503, "after": True},
        {"route": STREAM_ROUTE, "drop": True},
    ],
)
async def test_stream_knobs_are_refused_where_they_cannot_apply(
    http: httpx.AsyncClient, rule: dict[str, Any]
) -> None:
    response = await http.post("/_emulator/faults", json={"rules": [rule]})

    assert response.status_code == 400


async def test_stream_knobs_list_back_as_posted(http: httpx.AsyncClient) -> None:
    rule = {"route": STREAM_ROUTE, "cut_after_chunks": 0, "chunk_delay_s": 0.5}
    await inject_faults(http, rule)

    listed = (await http.get("/_emulator/faults")).json()["rules"]

    assert listed == [rule | {"times": 1}]
