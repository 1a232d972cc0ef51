"""Google's GenerateContent messages and tuning.v1's, each way: the one place they meet.

Google's `google.ai.generativelanguage.v1beta` GenerateContent and tuning.v1's share
field names, and enum value names and numbers, for everything both carry, but not field
numbers, so each field is copied by name, by hand. `model` is the exception:
`tunedModels/{id}` becomes the tenant's job, `tuningJobs/{job_id}`
(service.gemini_facade.names); any other name is INVALID_ARGUMENT on `model` (a base
model's own generate is not served: only tuned models are called through the platform).

What Google's request can carry and tuning.v1's cannot (tools, a cached content, a part
that is not text, the newer generation options: `seed`, `response_mime_type`, thinking,
...) is refused, INVALID_ARGUMENT naming its path in Google's request
(`contents[0].parts[1].inline_data`); it is never dropped, since a caller who asked for
JSON output or a tool call must not silently get prose. The check walks whatever fields
are set (`ListFields`), so a field Google adds later is refused too until it is mapped
here. The bounds of what is carried are tuning.v1's, checked by service.generation on
the mapped request; their violations name the same paths, the names being shared.

A content's role may be left empty in Google's API ("user" is meant); tuning.v1 requires
one, so an empty role is sent as `user`. A system instruction's role is ignored by both.

The answer back carries candidates (content, finish_reason, safety_ratings, index),
prompt_feedback, usage_metadata and model_version. tuning.v1's fields of its own (the
platform's `model`, the resolved model, alias and training-format flags) have no place
in Google's message and are not sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import islice

from google.ai import generativelanguage_v1beta as glm
from google.protobuf.message import Message

from core.domain.job import JOB_NAME_PREFIX
from core.errors import FieldViolation, InvalidArgument, echo
from service.gemini_facade.names import TUNED_MODEL_PREFIX, job_id_for
from tuning.v1 import generation_service_pb2 as gen

GOOGLE_PACKAGE = "google.ai.generativelanguage.v1beta."
CARRIED: Mapping[str, frozenset[str]] = {
    GOOGLE_PACKAGE + "GenerateContentRequest": frozenset(
        {"model", "contents", "system_instruction", "generation_config", "safety_settings"}
    ),
    GOOGLE_PACKAGE + "Content": frozenset({"role", "parts"}),
    GOOGLE_PACKAGE + "Part": frozenset({"text"}),
    GOOGLE_PACKAGE + "GenerationConfig": frozenset(
        {"candidate_count", "stop_sequences", "max_output_tokens", "temperature", "top_p", "top_k"}
    ),
    GOOGLE_PACKAGE + "SafetySetting": frozenset({"category", "threshold"}),
}
"""The fields of Google's request messages that tuning.v1 carries; any other set field is
refused."""
OPTIONAL_CONFIG = ("candidate_count", "max_output_tokens", "temperature", "top_p", "top_k")
"""GenerationConfig's fields with presence in both: unset means the model's default."""
DEFAULT_ROLE = "user"
NOT_CARRIED = (
    "not supported by the platform's tuned models, which take text parts, safety_settings "
    "and generation_config's candidate_count, stop_sequences, max_output_tokens, "
    "temperature, top_p and top_k"
)


def tuning_request(
    tenant: str, request: glm.GenerateContentRequest, max_reported: int
) -> gen.GenerateContentRequest:
    """tuning.v1's request for Google's `request` to one of `tenant`'s tuned models, or
    InvalidArgument naming the model if it is not one and every field that cannot be
    carried (the first `max_reported`)."""
    job_id = _job_id(tenant, request.model)
    violations = [] if job_id else [_model_violation(request.model)]
    violations += islice(uncarried(glm.GenerateContentRequest.pb(request)), max_reported)
    if violations:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        message = f"invalid GenerateContent request: {first.field}: {first.description}{more}"
        raise InvalidArgument(message, violations[:max_reported])
    mapped = gen.GenerateContentRequest(
        model=JOB_NAME_PREFIX + job_id,
        contents=[_content(c, DEFAULT_ROLE) for c in request.contents],
        safety_settings=[_safety_setting(s) for s in request.safety_settings],
    )
    if "system_instruction" in request:
        mapped.system_instruction.CopyFrom(_content(request.system_instruction, ""))
    if "generation_config" in request:
        mapped.generation_config.CopyFrom(_config(request.generation_config))
    return mapped


def uncarried(message: Message, path: str = "") -> Iterator[FieldViolation]:
    """A violation for each field set in `message` (of Google's request) that tuning.v1
    does not carry, at its path."""
    carried = CARRIED[message.DESCRIPTOR.full_name]
    for field, value in message.ListFields():
        here = path + field.name
        if field.name not in carried:
            yield FieldViolation(here, NOT_CARRIED)
        elif field.message_type is not None and field.is_repeated:
            for i, item in enumerate(value):
                yield from uncarried(item, f"{here}[{i}].")
        elif field.message_type is not None:
            yield from uncarried(value, f"{here}.")


def _job_id(tenant: str, model: str) -> str:
    if not model.startswith(TUNED_MODEL_PREFIX):
        return ""
    return job_id_for(tenant, model.removeprefix(TUNED_MODEL_PREFIX)) or ""


def _model_violation(model: str) -> FieldViolation:
    shape = "must be tunedModels/{id}, a tuned model of the caller's"
    return FieldViolation("model", f"{echo(model)}: {shape} (base models are not served)")


def _content(content: glm.Content, default_role: str) -> gen.Content:
    return gen.Content(
        role=content.role or default_role, parts=[gen.Part(text=p.text) for p in content.parts]
    )


def _config(config: glm.GenerationConfig) -> gen.GenerationConfig:
    mapped = gen.GenerationConfig(stop_sequences=list(config.stop_sequences))
    for name in OPTIONAL_CONFIG:
        if name in config:
            setattr(mapped, name, getattr(config, name))
    return mapped


def _safety_setting(setting: glm.SafetySetting) -> gen.SafetySetting:
    # Enum numbers are shared; one tuning.v1 does not list is refused by its bounds.
    return gen.SafetySetting(
        category=gen.HarmCategory.ValueType(int(setting.category)),
        threshold=gen.SafetySetting.HarmBlockThreshold.ValueType(int(setting.threshold)),
    )


# The answer back.


def google_response(answer: gen.GenerateContentResponse) -> glm.GenerateContentResponse:
    """Google's GenerateContentResponse for tuning.v1's `answer` (or one chunk of it)."""
    response = glm.GenerateContentResponse(
        candidates=[_candidate(c) for c in answer.candidates],
        model_version=answer.model_version,
    )
    if answer.HasField("prompt_feedback"):
        feedback = answer.prompt_feedback
        response.prompt_feedback = glm.GenerateContentResponse.PromptFeedback(
            block_reason=int(feedback.block_reason),
            safety_ratings=_ratings(feedback.safety_ratings),
        )
    if answer.HasField("usage_metadata"):
        usage = answer.usage_metadata
        response.usage_metadata = glm.GenerateContentResponse.UsageMetadata(
            prompt_token_count=usage.prompt_token_count,
            candidates_token_count=usage.candidates_token_count,
            total_token_count=usage.total_token_count,
        )
    return response


def _candidate(candidate: gen.Candidate) -> glm.Candidate:
    mapped = glm.Candidate(
        index=candidate.index,
        finish_reason=int(candidate.finish_reason),
        safety_ratings=_ratings(candidate.safety_ratings),
    )
    if candidate.HasField("content"):
        parts = [glm.Part(text=p.text) for p in candidate.content.parts]
        mapped.content = glm.Content(role=candidate.content.role, parts=parts)
    return mapped


def _ratings(ratings: Sequence[gen.SafetyRating]) -> list[glm.SafetyRating]:
    return [
        glm.SafetyRating(
            category=int(r.category), probability=int(r.probability), blocked=r.blocked
        )
        for r in ratings
    ]
