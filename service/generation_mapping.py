"""GenerateContent's messages in Google's JSON and back: the one place they are mapped.

tuning.v1's GenerateContent messages carry the field and enum value names of Google's
`google.ai.generativelanguage.v1beta` ones, which Vertex AI's `generateContent` shares
for everything this API carries (text contents, generation config, safety settings and
ratings, usage). So the mapping is protobuf's own JSON mapping (camelCase names, enums
by name), with two exceptions written here: the request's `model` is the platform's name
and stays out of the body (the upstream names the model in the path), and a system
instruction goes without a role. An answer is read with unknown fields ignored: the
upstreams answer more than this API carries (citations, token details, a thought
signature), and an enum value this API does not list reads as its zero value.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from core.errors import UpstreamError
from tuning.v1 import generation_service_pb2 as gen

Json = dict[str, Any]


def request_body(request: gen.GenerateContentRequest) -> Json:
    """The upstream's generateContent body for `request`."""
    body = json_format.MessageToDict(request)
    body.pop("model", None)
    instruction = body.get("systemInstruction")
    if instruction is not None:
        instruction.pop("role", None)
    return body


def response_of(answer: Json, model: str) -> gen.GenerateContentResponse:
    """The upstream's GenerateContentResponse as tuning.v1's, answered by `model`.

    An answer that does not parse is an upstream fault (UpstreamError, UNKNOWN)."""
    response = gen.GenerateContentResponse()
    try:
        json_format.ParseDict(answer, response, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise UpstreamError(
            f"the upstream's generateContent answer is not a GenerateContentResponse: {exc}"
        ) from None
    response.model = model
    return response
