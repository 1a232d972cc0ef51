"""The hand-written mapping of GenerateContent to Google's JSON, held to protobuf's own JSON
mapping (`json_format`, which it replaced for speed) field by field, and to Google's
rule that a body carries only Google's fields."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from core.errors import UpstreamError
from service.generation_mapping import request_body, response_of
from tuning.v1 import generation_service_pb2 as gen


def full_request() -> gen.GenerateContentRequest:
    return gen.GenerateContentRequest(
        model="aliases/prod",
        request_key="user-7",
        skip_training_format=True,
        contents=[
            gen.Content(role="user", parts=[gen.Part(text="a"), gen.Part(text="b")]),
            gen.Content(role="model", parts=[gen.Part(text="c")]),
        ],
        system_instruction=gen.Content(role="system", parts=[gen.Part(text="be brief")]),
        generation_config=gen.GenerationConfig(
            candidate_count=2,
            stop_sequences=["\n\n", "END"],
            max_output_tokens=64,
            temperature=0.2,
            top_p=0.95,
            top_k=40,
        ),
        safety_settings=[
            gen.SafetySetting(
                category=gen.HARM_CATEGORY_HARASSMENT,
                threshold=gen.SafetySetting.BLOCK_ONLY_HIGH,
            ),
            gen.SafetySetting(
                category=gen.HARM_CATEGORY_DANGEROUS_CONTENT, threshold=gen.SafetySetting.OFF
            ),
        ],
    )


def by_json_format(request: gen.GenerateContentRequest) -> dict[str, Any]:
    """What protobuf's JSON mapping sends, without the fields that are the platform's."""
    body = json_format.MessageToDict(request)
    for ours in ("model", "requestKey", "skipTrainingFormat"):
        body.pop(ours, None)
    body.get("systemInstruction", {}).pop("role", None)
    return body


@pytest.mark.parametrize(
    "request_",
    [
        full_request(),
        gen.GenerateContentRequest(
            model="tuningJobs/j1", contents=[gen.Content(role="user", parts=[gen.Part(text="x")])]
        ),
        gen.GenerateContentRequest(
            contents=[gen.Content(role="user", parts=[gen.Part(text="x")])],
            generation_config=gen.GenerationConfig(temperature=0.0, top_p=1.0),
        ),
    ],
)
def test_a_request_is_sent_as_protobufs_json_mapping_would_without_our_fields(
    request_: gen.GenerateContentRequest,
) -> None:
    assert request_body(request_) == by_json_format(request_)


def test_a_float_is_sent_with_the_digits_it_holds() -> None:
    config = request_body(full_request())["generationConfig"]
    assert (config["temperature"], config["topP"]) == (0.2, 0.95)


ANSWERS: list[dict[str, Any]] = [
    {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "4"}, {"thoughtSignature": "abc"}, {"text": "!"}],
                },
                "finishReason": "STOP",
                "index": 0,
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
                    {"category": "HARM_CATEGORY_NEW_ONE", "probability": "LOW", "blocked": True},
                ],
                "citationMetadata": {"citations": []},
                "avgLogprobs": -0.1,
            },
            {"finishReason": "SOMETHING_NEW", "index": 1},
        ],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 2,
            "totalTokenCount": 9,
            "thoughtsTokenCount": 2,
        },
        "modelVersion": "tunedModels/x",
        "responseId": "r1",
    },
    {
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [{"category": 10, "probability": 4, "blocked": True}],
        },
        "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
    },
    {},
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_an_answer_reads_as_protobufs_json_mapping_reads_it(answer: dict[str, Any]) -> None:
    expected = gen.GenerateContentResponse()
    json_format.ParseDict(answer, expected, ignore_unknown_fields=True)
    expected.model = "tuningJobs/j1"
    assert response_of(answer, "tuningJobs/j1") == expected


@pytest.mark.parametrize(
    "answer",
    [
        {"candidates": {"not": "a list"}},
        {"candidates": [{"content": {"parts": [{"text": 7}]}}]},
        {"usageMetadata": {"promptTokenCount": "many"}},
        {"candidates": ["text"]},
    ],
)
def test_an_answer_of_the_wrong_shape_is_the_upstreams_fault(answer: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError):
        response_of(answer, "tuningJobs/j1")
