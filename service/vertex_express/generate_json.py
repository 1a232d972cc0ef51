"""generateContent in Vertex AI's JSON and tuning.v1's GenerateContent messages.

tuning.v1's messages carry Google's field and enum names (service.generation_mapping,
which maps them to and from the upstreams), so a body parses into a
GenerateContentRequest by protobuf's JSON mapping: a field this API does not carry
(tools, a part that is not text, a generation option it has no room for) is
INVALID_ARGUMENT naming it, never dropped. The model comes from the path, never the
body. The answer is written back in Google's shape, without the platform's own fields
(which model an alias resolved to, whether the training format was applied).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from core.errors import ECHO_MAX_CHARS, FieldViolation, InvalidArgument, echo
from tuning.v1 import generation_service_pb2 as gen

Json = dict[str, Any]
PLATFORM_FIELDS = (
    "model",
    "resolvedModel",
    "aliasRevision",
    "canary",
    "promptTemplateApplied",
    "systemInstructionApplied",
)
"""GenerateContentResponse's fields that are the platform's, not Google's."""
REQUEST_FIELDS = frozenset({"contents", "systemInstruction", "generationConfig", "safetySettings"})


def generate_request(body: object, model: str) -> gen.GenerateContentRequest:
    """The tuning.v1 request for a generateContent body, calling `model`."""
    if not isinstance(body, dict):
        raise InvalidArgument(
            "the request is not a GenerateContentRequest",
            [FieldViolation("request", "must be a JSON object")],
        )
    unknown = [key for key in body if key not in REQUEST_FIELDS]
    if unknown:
        violations = [
            FieldViolation(k[:ECHO_MAX_CHARS], "not supported by this platform") for k in unknown
        ]
        raise InvalidArgument(f"unsupported field {echo(unknown[0])}", violations[:20])
    request = gen.GenerateContentRequest()
    try:
        json_format.ParseDict(body, request)
    except (json_format.ParseError, RecursionError, ValueError) as exc:
        raise InvalidArgument(
            f"invalid GenerateContentRequest: {echo(str(exc), 200)}",
            [FieldViolation("request", "not a GenerateContentRequest this platform takes")],
        ) from None
    request.model = model
    return request


def response_json(response: gen.GenerateContentResponse) -> Json:
    """Vertex AI's GenerateContentResponse for the platform's answer."""
    body = json_format.MessageToDict(response)
    for field in PLATFORM_FIELDS:
        body.pop(field, None)
    return body
