"""Validation of create and patch bodies (already normalised to camelCase).

Rules follow the contract: id pattern, required ``baseModel``, ``displayName`` at most 40
characters, non-empty examples each with an ``output``, hyperparameter defaults and the
learning-rate oneof.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from emulator import fields
from emulator.errors import JsonObject, invalid_argument
from emulator.ids import is_valid_model_id
from emulator.protojson import camel_case
from emulator.spec import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCH_COUNT,
    CreateSpec,
    Hyperparameters,
    ModelFields,
)

DISPLAY_NAME_MAX_CHARS = 40
INPUT_MAX_CHARS = 40_000
OUTPUT_MAX_CHARS = 5_000
EXAMPLES_PATH = "tuningTask.trainingData.examples.examples"
HYPER_PATH = "tuningTask.hyperparameters"

# JSON name -> ModelFields attribute, for the fields a caller may set and update.
MUTABLE_FIELDS = {
    "displayName": "display_name",
    "description": "description",
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
}
IMMUTABLE_FIELDS = frozenset(
    {"name", "baseModel", "tunedModelSource", "tuningTask", "state", "createTime", "updateTime"}
)


def parse_create(body: JsonObject, model_id: str | None) -> CreateSpec:
    """Validate a create request: the TunedModel body and the ``tunedModelId`` parameter."""
    if model_id is not None:
        check_model_id(model_id)
    task = fields.object_at(body, "tuningTask", "tuningTask")
    return CreateSpec(
        model_id=model_id,
        base_model=_base_model(body),
        fields=updated_fields(ModelFields(), body, tuple(MUTABLE_FIELDS)),
        hyperparameters=_hyperparameters(fields.object_at(task, "hyperparameters", HYPER_PATH)),
        example_count=_example_count(task),
        reader_project_numbers=_reader_project_numbers(body),
    )


def check_model_id(model_id: str) -> None:
    """400 unless the id matches ``[a-z]([a-z0-9-]{0,38}[a-z0-9])?``."""
    if not is_valid_model_id(model_id):
        raise invalid_argument(
            f"tunedModelId {model_id!r} is invalid: use 1 to 40 lowercase letters, digits or "
            "hyphens, starting with a letter and not ending with a hyphen.",
            "tunedModelId",
        )


def updated_fields(current: ModelFields, body: JsonObject, names: tuple[str, ...]) -> ModelFields:
    """``current`` with the named mutable fields set from ``body`` (reset when absent)."""
    changes = {MUTABLE_FIELDS[name]: _mutable_value(body, name) for name in names}
    return replace(current, **changes)


def _mutable_value(body: JsonObject, name: str) -> Any:
    """The validated value of one mutable field, or its default when absent."""
    if name not in body:
        return getattr(ModelFields(), MUTABLE_FIELDS[name])
    value = body[name]
    if name == "displayName":
        return fields.string_at(body, name, name, DISPLAY_NAME_MAX_CHARS)
    if name == "description":
        return fields.string_at(body, name, name)
    if name == "topK":
        return fields.integer(value, name, 0)
    return fields.number(value, name, 0.0, 1.0)


def _base_model(body: JsonObject) -> str:
    base_model = fields.string_at(body, "baseModel", "baseModel")
    if not base_model:
        raise invalid_argument("baseModel is required.", "baseModel")
    if not base_model.startswith("models/"):
        raise invalid_argument("baseModel must be a model name like 'models/...'.", "baseModel")
    return base_model


def _example_count(task: JsonObject) -> int:
    data = fields.object_at(task, "trainingData", "tuningTask.trainingData")
    dataset = fields.object_at(data, "examples", "tuningTask.trainingData.examples")
    examples = dataset.get("examples", [])
    if not isinstance(examples, list) or not examples:
        raise invalid_argument(f"{EXAMPLES_PATH} must be a non-empty list.", EXAMPLES_PATH)
    for index, example in enumerate(examples):
        _check_example(example, f"{EXAMPLES_PATH}[{index}]")
    return len(examples)


def _check_example(example: Any, path: str) -> None:
    if not isinstance(example, dict):
        raise invalid_argument(f"{path} must be an object.", path)
    fields.string_at(example, "textInput", f"{path}.textInput", INPUT_MAX_CHARS)
    output = fields.string_at(example, "output", f"{path}.output", OUTPUT_MAX_CHARS)
    if not output:
        raise invalid_argument(f"{path}.output is required.", f"{path}.output")


def _hyperparameters(raw: JsonObject) -> Hyperparameters:
    epoch_path, batch_path = f"{HYPER_PATH}.epochCount", f"{HYPER_PATH}.batchSize"
    epochs = fields.integer(raw.get("epochCount", DEFAULT_EPOCH_COUNT), epoch_path, 1)
    batch = fields.integer(raw.get("batchSize", DEFAULT_BATCH_SIZE), batch_path, 1)
    defaults = Hyperparameters(epoch_count=epochs, batch_size=batch)
    if "learningRate" in raw and "learningRateMultiplier" in raw:
        raise invalid_argument(
            "Only one of learningRate and learningRateMultiplier may be set.", HYPER_PATH
        )
    if "learningRateMultiplier" in raw:
        multiplier = fields.positive_number(
            raw["learningRateMultiplier"], f"{HYPER_PATH}.learningRateMultiplier"
        )
        return replace(defaults, learning_rate=None, learning_rate_multiplier=multiplier)
    if "learningRate" in raw:
        rate = fields.positive_number(raw["learningRate"], f"{HYPER_PATH}.learningRate")
        return replace(defaults, learning_rate=rate)
    return defaults


def _reader_project_numbers(body: JsonObject) -> tuple[int, ...]:
    raw = body.get("readerProjectNumbers", [])
    if not isinstance(raw, list):
        raise invalid_argument("readerProjectNumbers must be a list.", "readerProjectNumbers")
    return tuple(fields.integer(value, "readerProjectNumbers", 0) for value in raw)


def parse_update_mask(raw: str | None) -> tuple[str, ...] | None:
    """The comma-separated ``updateMask`` as camelCase paths; ``None`` when not given."""
    if raw is None or not raw.strip():
        return None
    paths = tuple(camel_case(path.strip()) for path in raw.split(",") if path.strip())
    for path in paths:
        _check_mask_path(path)
    return paths


def _check_mask_path(path: str) -> None:
    if path in IMMUTABLE_FIELDS or path.split(".", maxsplit=1)[0] in IMMUTABLE_FIELDS:
        raise invalid_argument(f"Field {path} is immutable and cannot be updated.", "updateMask")
    if path not in MUTABLE_FIELDS:
        raise invalid_argument(f"Invalid field mask path: {path}.", "updateMask")


def patched_fields(
    current: ModelFields, body: JsonObject, mask: tuple[str, ...] | None
) -> ModelFields:
    """Apply a PATCH: the masked fields, or (no mask) the mutable fields present in the body."""
    names = mask if mask is not None else tuple(n for n in MUTABLE_FIELDS if n in body)
    return updated_fields(current, body, names)
