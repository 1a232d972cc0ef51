"""The two generation surfaces, Gemini API and Vertex AI: their enums and proto names.

Both answer ``GenerateContentResponse`` in nearly the same shape, but their enums differ:
``HarmCategory`` is numbered differently (Gemini API's still holds the PaLM categories),
Vertex rates harm severity as well as probability, and only Vertex's ``SafetySetting`` has a
``method``. The numbers are those of ``google.ai.generativelanguage.v1beta`` and
``google.cloud.aiplatform.v1`` (tests keep them in step with the installed protos).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from emulator.errors import TYPE_PREFIX, JsonObject

HARM_THRESHOLDS = (
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
)
HARM_BLOCK_METHODS = ("HARM_BLOCK_METHOD_UNSPECIFIED", "SEVERITY", "PROBABILITY")
# The categories Gemini models rate (and answer ratings for), in the order answers list them.
RATED_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)
_GEMINI_CATEGORIES = (
    "HARM_CATEGORY_UNSPECIFIED",
    "HARM_CATEGORY_DEROGATORY",
    "HARM_CATEGORY_TOXICITY",
    "HARM_CATEGORY_VIOLENCE",
    "HARM_CATEGORY_SEXUAL",
    "HARM_CATEGORY_MEDICAL",
    "HARM_CATEGORY_DANGEROUS",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
)
_VERTEX_CATEGORIES = (
    "HARM_CATEGORY_UNSPECIFIED",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
    "HARM_CATEGORY_JAILBREAK",
)
# The enum values the emulator answers, by JSON field; the same numbers on both surfaces.
_ANSWERED_NUMBERS: Mapping[str, Mapping[str, int]] = {
    "finishReason": {"STOP": 1, "MAX_TOKENS": 2, "SAFETY": 3},
    "blockReason": {"SAFETY": 1},
    "probability": {"NEGLIGIBLE": 1, "HIGH": 4},
    "severity": {"HARM_SEVERITY_NEGLIGIBLE": 1, "HARM_SEVERITY_HIGH": 4},
}


@dataclass(frozen=True)
class Surface:
    """One API that generates: its enums, and what its answers carry.

    Attributes:
        proto_package: the package of its request messages, named in enum errors.
        categories: ``HarmCategory`` names, indexed by number.
        usable_categories: the categories its Gemini models accept in ``safetySettings``.
        safety_setting_keys: the fields of its ``SafetySetting``.
        request_keys: the fields of its ``GenerateContentRequest`` (any other is refused,
            as Google's JSON front end refuses an unknown name).
        rates_severity: its safety ratings carry a ``severity`` as well.
        stamps_create_time: its answers carry ``createTime``.
    """

    proto_package: str
    categories: tuple[str, ...]
    usable_categories: frozenset[str]
    safety_setting_keys: frozenset[str]
    request_keys: frozenset[str]
    rates_severity: bool
    stamps_create_time: bool

    def enum_type(self, name: str) -> str:
        """The full type URL of one of its enums, as Google's JSON errors name it."""
        return f"{TYPE_PREFIX}{self.proto_package}.{name}"

    def with_int_enums(self, answer: JsonObject) -> JsonObject:
        """``answer`` with every enum it holds as a number (``$alt=json;enum-encoding=int``)."""
        return {key: self._encoded(key, value) for key, value in answer.items()}

    def _encoded(self, key: str, value: object) -> object:
        if isinstance(value, dict):
            return self.with_int_enums(value)
        if isinstance(value, list):
            return [self._encoded(key, item) for item in value]
        if key == "category" and isinstance(value, str):
            return self.categories.index(value)
        if key in _ANSWERED_NUMBERS and isinstance(value, str):
            return _ANSWERED_NUMBERS[key][value]
        return value


_USABLE = frozenset((*RATED_CATEGORIES, "HARM_CATEGORY_CIVIC_INTEGRITY"))

GEMINI_API = Surface(
    proto_package="google.ai.generativelanguage.v1beta",
    categories=_GEMINI_CATEGORIES,
    usable_categories=_USABLE,
    safety_setting_keys=frozenset({"category", "threshold"}),
    request_keys=frozenset(
        {
            "model",
            "contents",
            "tools",
            "toolConfig",
            "safetySettings",
            "systemInstruction",
            "generationConfig",
            "cachedContent",
        }
    ),
    rates_severity=False,
    stamps_create_time=False,
)
VERTEX_AI = Surface(
    proto_package="google.cloud.aiplatform.v1",
    categories=_VERTEX_CATEGORIES,
    usable_categories=_USABLE | {"HARM_CATEGORY_JAILBREAK"},
    safety_setting_keys=frozenset({"category", "threshold", "method"}),
    request_keys=frozenset(
        {
            "model",
            "contents",
            "systemInstruction",
            "cachedContent",
            "tools",
            "toolConfig",
            "labels",
            "safetySettings",
            "modelArmorConfig",
            "generationConfig",
        }
    ),
    rates_severity=True,
    stamps_create_time=True,
)
