"""A ``GenerateContentRequest`` read and validated, before any generation.

What is read: ``contents`` (turns of role ``user`` or ``model``), ``systemInstruction``,
``generationConfig`` (``candidateCount``, ``maxOutputTokens``, ``stopSequences``,
``temperature``, ``topP``, ``topK``) and ``safetySettings``. The surface's other fields
(tools, cached content, labels, the rest of the config) are accepted and ignored; a name
the surface does not have is refused, as Google's JSON front end refuses it. Every bound is checked
before anything is generated; a broken one is 400 ``INVALID_ARGUMENT`` with a BadRequest
field violation naming the field in snake_case, as Google does.

Enums come as names or numbers (Google's generated clients send numbers). An unknown one is
answered as Google's JSON front end answers it: ``Invalid value at 'safety_settings[0].category'
(type.googleapis.com/….HarmCategory), "X"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from emulator.errors import ApiError, JsonObject, invalid_argument
from emulator.generate_schema import HARM_BLOCK_METHODS, HARM_THRESHOLDS, Surface

ROLES = ("user", "model")
MAX_CANDIDATES = 8
MAX_STOP_SEQUENCES = 5
MAX_OUTPUT_TOKENS = 65_536
MAX_TOP_K = 1_000
MAX_TEMPERATURE = 2.0
# The input limit of the Gemini 1.5 and 2.x models, in (emulated) tokens.
MAX_INPUT_TOKENS = 1_048_576
_CONFIG = "generation_config"
_CATEGORY = "HarmCategory"
_THRESHOLD = "SafetySetting.HarmBlockThreshold"
_METHOD = "SafetySetting.HarmBlockMethod"
_ENUM_NAMES = {_THRESHOLD: HARM_THRESHOLDS, _METHOD: HARM_BLOCK_METHODS}


@dataclass(frozen=True)
class GenerationConfig:
    """The sampling settings that change the emulated answer (``0`` is "not set")."""

    candidate_count: int = 1
    max_output_tokens: int = 0
    stop_sequences: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerateRequest:
    """What the made-up model reads of a request.

    Attributes:
        turns: each turn's role and the texts of its parts, in order.
        system_texts: the texts of ``systemInstruction``.
        config: the settings that shape the answer.
        thresholds: the block threshold asked for each harm category.
    """

    turns: tuple[tuple[str, tuple[str, ...]], ...]
    system_texts: tuple[str, ...]
    config: GenerationConfig
    thresholds: dict[str, str]

    @classmethod
    def from_json(cls, body: JsonObject, surface: Surface) -> GenerateRequest:
        """Validate a camelCase request body; :class:`ApiError` 400 if it breaks a rule."""
        unknown = sorted(set(body) - surface.request_keys)
        if unknown:
            raise invalid_argument(
                f'Invalid JSON payload received. Unknown name "{unknown[0][:40]}": '
                "Cannot find field."
            )
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise invalid_argument("contents is not specified.", "contents")
        request = cls(
            turns=tuple(_turn(content, f"contents[{i}]") for i, content in enumerate(contents)),
            system_texts=_system_texts(body.get("systemInstruction")),
            config=_config(_object(body.get("generationConfig", {}), _CONFIG)),
            thresholds=_thresholds(body.get("safetySettings", []), surface),
        )
        request.check_input_size()
        return request

    def prompt_texts(self) -> tuple[str, ...]:
        """Every text the model reads: the system instruction, then each turn's."""
        return self.system_texts + tuple(text for _, texts in self.turns for text in texts)

    def last_user_text(self) -> str:
        """The texts of the last user turn, joined by spaces (the turn being answered)."""
        user_turns = [texts for role, texts in self.turns if role == "user"]
        return " ".join(text for text in user_turns[-1] if text) if user_turns else ""

    def check_input_size(self) -> None:
        """400 if the prompt has more (emulated) tokens than the models take."""
        tokens = sum(len(text.split()) for text in self.prompt_texts())
        if tokens > MAX_INPUT_TOKENS:
            raise ApiError(
                400,
                f"The input token count ({tokens}) exceeds the maximum number of tokens "
                f"allowed ({MAX_INPUT_TOKENS}).",
            )


def _turn(raw: Any, field: str) -> tuple[str, tuple[str, ...]]:
    """A content's role (``user`` when not given) and the texts of its parts."""
    content = _object(raw, field)
    role = content.get("role") or "user"
    if role not in ROLES:
        raise invalid_argument("Please use a valid role: user, model.", f"{field}.role")
    return role, _texts(content, field)


def _system_texts(raw: Any) -> tuple[str, ...]:
    return () if raw is None else _texts(_object(raw, "system_instruction"), "system_instruction")


def _texts(content: JsonObject, field: str) -> tuple[str, ...]:
    """The text of each part (``""`` for parts without text); 400 if there are no parts."""
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise invalid_argument(f"{field}.parts must not be empty.", f"{field}.parts")
    texts = [_object(part, f"{field}.parts[{i}]").get("text", "") for i, part in enumerate(parts)]
    if not all(isinstance(text, str) for text in texts):
        raise _invalid_payload(f"{field}.parts", "text must be a string")
    return tuple(texts)


def _config(raw: JsonObject) -> GenerationConfig:
    _number(raw, "temperature", 0.0, MAX_TEMPERATURE)
    _number(raw, "topP", 0.0, 1.0)
    _integer(raw, "topK", 0, MAX_TOP_K)
    count = _integer(raw, "candidateCount", 0, MAX_CANDIDATES)
    return GenerationConfig(
        candidate_count=count or 1,
        max_output_tokens=_integer(raw, "maxOutputTokens", 0, MAX_OUTPUT_TOKENS),
        stop_sequences=_stop_sequences(raw.get("stopSequences", [])),
    )


def _number(config: JsonObject, key: str, low: float, high: float) -> float:
    value = config.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid_payload(f"{_CONFIG}.{_snake(key)}", "expected a number")
    if not low <= value <= high:
        raise _out_of_range(key, value, low, high)
    return float(value)


def _integer(config: JsonObject, key: str, low: int, high: int) -> int:
    """An int32 field: a JSON integer, an integral float or a decimal string (proto3 JSON).

    google-genai sends ``topK`` as a float (``20.0``).
    """
    value = config.get(key, 0)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_payload(f"{_CONFIG}.{_snake(key)}", "expected an integer")
    if not low <= value <= high:
        # 0 is "not set", so the smallest value one can ask for is 1.
        raise _out_of_range(key, value, max(low, 1), high)
    return value


def _stop_sequences(value: Any) -> tuple[str, ...]:
    field = f"{_CONFIG}.stop_sequences"
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid_payload(field, "expected a list of strings")
    if len(value) > MAX_STOP_SEQUENCES:
        raise invalid_argument(
            f"The number of stop sequences ({len(value)}) exceeds the maximum allowed "
            f"({MAX_STOP_SEQUENCES}).",
            field,
        )
    return tuple(item for item in value if item)


def _thresholds(value: Any, surface: Surface) -> dict[str, str]:
    """The threshold asked for each category; 400 for unknown, unusable or repeated ones."""
    if not isinstance(value, list):
        raise _invalid_payload("safety_settings", "expected a list")
    thresholds: dict[str, str] = {}
    for i, raw in enumerate(value):
        field = f"safety_settings[{i}]"
        category, threshold = _safety_setting(_object(raw, field), field, surface)
        if category in thresholds:
            raise invalid_argument(f"{category} is repeated.", field + ".category")
        thresholds[category] = threshold
    return thresholds


def _safety_setting(setting: JsonObject, field: str, surface: Surface) -> tuple[str, str]:
    """One setting's category and threshold (its ``method``, on Vertex, is only checked)."""
    unknown = sorted(set(setting) - surface.safety_setting_keys)
    if unknown:
        raise invalid_argument(
            f'Invalid JSON payload received. Unknown name "{unknown[0][:40]}" at '
            f"'{field}': Cannot find field.",
            field,
        )
    category = _enum(setting.get("category"), _CATEGORY, field + ".category", surface)
    if category not in surface.usable_categories:
        raise invalid_argument(f"{category} is not supported.", field + ".category")
    _enum(setting.get("method"), _METHOD, field + ".method", surface)
    return category, _enum(setting.get("threshold"), _THRESHOLD, field + ".threshold", surface)


def _enum(value: Any, kind: str, field: str, surface: Surface) -> str:
    """The name of the ``kind`` enum that ``value`` stands for (absent is its value 0)."""
    names = surface.categories if kind == _CATEGORY else _ENUM_NAMES[kind]
    if value is None:
        return names[0]
    if isinstance(value, str) and value in names:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    shown = f'"{value[:64]}"' if isinstance(value, str) else str(value)[:64]
    message = f"Invalid value at '{field}' ({surface.enum_type(kind)}), {shown}"
    raise invalid_argument(message, field)


def _object(value: Any, field: str) -> JsonObject:
    if not isinstance(value, dict):
        raise _invalid_payload(field, "expected an object")
    return value


def _invalid_payload(field: str, problem: str) -> ApiError:
    return invalid_argument(f"Invalid JSON payload received. {problem} at '{field}'.", field)


def _out_of_range(key: str, value: float, low: float, high: float) -> ApiError:
    """Vertex AI's wording of an out-of-range generation setting."""
    return invalid_argument(
        f"Unable to submit request because it has a {key} value of {value} but the supported "
        f"range is from {low:g} (inclusive) to {high:g} (inclusive). Update the value and try "
        "again.",
        f"{_CONFIG}.{_snake(key)}",
    )


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
