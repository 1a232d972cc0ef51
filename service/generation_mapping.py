"""GenerateContent's messages in Google's JSON and back: the one place they are mapped.

tuning.v1's GenerateContent messages carry the field and enum value names of Google's
`google.ai.generativelanguage.v1beta` ones, which Vertex AI's `generateContent` shares
for everything this API carries (text contents, generation config, safety settings and
ratings, usage). The mapping is written out by hand, field by field, rather than left to
protobuf's `json_format`: that one walks every message by reflection and was 14% of the
API's CPU on a generate (bench/README.md), and it would send the fields that are ours
alone (`model`, the platform's name, which the upstream has in the path; `request_key`;
`skip_training_format`), which Google refuses as unknown names. A system instruction goes
without a role. An answer is read leniently, as `json_format` with unknown fields ignored
would: the upstreams answer more than this API carries (citations, token details, a
thought signature), a part that is not text reads as an empty part, and an enum value
this API does not list reads as its zero value. An answer of the wrong shape is the
upstream's fault (UpstreamError).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from core.errors import UpstreamError
from tuning.v1 import generation_service_pb2 as gen

Json = dict[str, Any]
_ConfigField = Literal["candidate_count", "max_output_tokens", "temperature", "top_p", "top_k"]
_OPTIONAL_CONFIG: tuple[tuple[_ConfigField, str], ...] = (
    ("candidate_count", "candidateCount"),
    ("max_output_tokens", "maxOutputTokens"),
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("top_k", "topK"),
)


def request_body(request: gen.GenerateContentRequest) -> Json:
    """The upstream's generateContent body for `request`."""
    body: Json = {"contents": [_content_json(c) for c in request.contents]}
    if request.HasField("system_instruction"):
        body["systemInstruction"] = {"parts": _parts_json(request.system_instruction.parts)}
    if request.HasField("generation_config"):
        config = _config_json(request.generation_config)
        if config:
            body["generationConfig"] = config
    if request.safety_settings:
        body["safetySettings"] = [
            {
                "category": gen.HarmCategory.Name(s.category),
                "threshold": gen.SafetySetting.HarmBlockThreshold.Name(s.threshold),
            }
            for s in request.safety_settings
        ]
    return body


def _content_json(content: gen.Content) -> Json:
    return {"role": content.role, "parts": _parts_json(content.parts)}


def _parts_json(parts: Iterable[gen.Part]) -> list[Json]:
    return [{"text": part.text} for part in parts]


def _config_json(config: gen.GenerationConfig) -> Json:
    body: Json = {}
    for field, name in _OPTIONAL_CONFIG:
        if config.HasField(field):
            value = getattr(config, field)
            body[name] = _float32(value) if isinstance(value, float) else value
    if config.stop_sequences:
        body["stopSequences"] = list(config.stop_sequences)
    return body


def _float32(value: float) -> float:
    """The shortest decimal that is the same 32-bit float: 0.2, not 0.20000000298 (what a
    float field holds), as protobuf's JSON mapping writes it."""
    for digits in range(6, 10):
        shorter = float(f"{value:.{digits}g}")
        if struct.unpack("f", struct.pack("f", shorter))[0] == value:
            return shorter
    return value


def response_of(answer: Json, model: str) -> gen.GenerateContentResponse:
    """The upstream's GenerateContentResponse as tuning.v1's, answered by `model`.

    An answer that does not parse is an upstream fault (UpstreamError, UNKNOWN)."""
    try:
        return _response(answer, model)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(
            "the upstream's generateContent answer is not a GenerateContentResponse: "
            f"{type(exc).__name__}"
        ) from None


def _response(answer: Mapping[str, Any], model: str) -> gen.GenerateContentResponse:
    response = gen.GenerateContentResponse(
        candidates=[_candidate(c) for c in answer.get("candidates", ())],
        model_version=str(answer.get("modelVersion", "")),
        model=model,
    )
    feedback = answer.get("promptFeedback")
    if feedback is not None:
        response.prompt_feedback.CopyFrom(
            gen.PromptFeedback(
                block_reason=_enum(gen.PromptFeedback.BlockReason, feedback.get("blockReason")),
                safety_ratings=_ratings(feedback.get("safetyRatings", ())),
            )
        )
    usage = answer.get("usageMetadata")
    if usage is not None:
        response.usage_metadata.CopyFrom(
            gen.UsageMetadata(
                prompt_token_count=int(usage.get("promptTokenCount", 0)),
                candidates_token_count=int(usage.get("candidatesTokenCount", 0)),
                total_token_count=int(usage.get("totalTokenCount", 0)),
            )
        )
    return response


def _candidate(data: Mapping[str, Any]) -> gen.Candidate:
    candidate = gen.Candidate(
        finish_reason=_enum(gen.Candidate.FinishReason, data.get("finishReason")),
        safety_ratings=_ratings(data.get("safetyRatings", ())),
        index=int(data.get("index", 0)),
    )
    content = data.get("content")
    if content is not None:
        parts = [
            gen.Part(text=p["text"]) if "text" in p else gen.Part()
            for p in content.get("parts", ())
        ]
        candidate.content.CopyFrom(gen.Content(role=str(content.get("role", "")), parts=parts))
    return candidate


def _ratings(ratings: Iterable[Mapping[str, Any]]) -> list[gen.SafetyRating]:
    return [
        gen.SafetyRating(
            category=_enum(gen.HarmCategory, r.get("category")),
            probability=_enum(gen.SafetyRating.HarmProbability, r.get("probability")),
            blocked=bool(r.get("blocked", False)),
        )
        for r in ratings
    ]


def _enum(enum: Any, value: object) -> Any:
    """An enum value by name (or number, as some clients send); unknown: zero."""
    if isinstance(value, str):
        return enum.Value(value) if value in enum.keys() else 0  # noqa: SIM118 (an enum)
    if isinstance(value, int) and not isinstance(value, bool) and value in enum.values():
        return value
    return 0
