"""Validation of a ``tuningJobs.create`` body (a TuningJob) into a :class:`TuningJobSpec`.

Field names follow proto3 JSON: camelCase or the proto's snake_case are accepted, map keys
(``labels``) are taken as they are. As Google's front end does, a field the API version's
proto does not have is refused with 400 ``Invalid JSON payload received. Unknown name "X" at
'tuning_job.…': Cannot find field.``; v1 has ``epochCount``, ``learningRateMultiplier`` and
``adapterSize`` in ``hyperParameters``, v1beta1 also ``batchSize`` and ``learningRate``.
Output-only fields (``name``, ``state``, …) are known, and ignored, as Vertex ignores them.
Enums are accepted as names or numbers, int64 as numbers or decimal strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.errors import ApiError, JsonObject, invalid_argument
from emulator.protojson import camel_case
from emulator.storage_objects import parse_gs_uri
from emulator.vertex_catalog import ADAPTER_SIZE_NAME, ADAPTER_SIZE_NUMBER, VertexBaseModel

V1, V1BETA1 = "v1", "v1beta1"
DISPLAY_NAME_MAX_CHARS = 128
DESCRIPTION_MAX_CHARS = 4096
LABELS_MAX = 64
LABEL_MAX_CHARS = 64
EPOCH_COUNT_RANGE = (1, 100)
BATCH_SIZE_RANGE = (1, 1024)
LEARNING_RATE_MULTIPLIER_MAX = 100.0
LEARNING_RATE_MAX = 1.0
ECHO_MAX_CHARS = 100
# Emulator defaults when the caller leaves a hyperparameter out (the service picks its own).
DEFAULT_EPOCH_COUNT = 5
DEFAULT_ADAPTER_SIZE = "ADAPTER_SIZE_FOUR"
DEFAULT_BATCH_SIZE = 8
ADAPTER_NOT_SUPPORTED = "The adapter size is not supported for this base model."


@dataclass(frozen=True)
class _Message:
    """The JSON field names of one proto message and the messages nested under some."""

    path: str
    fields: frozenset[str]
    children: Mapping[str, _Message] = field(default_factory=dict)


_HYPER_V1 = frozenset({"epochCount", "learningRateMultiplier", "adapterSize"})
_SPEC_FIELDS = frozenset(
    {
        "trainingDatasetUri",
        "validationDatasetUri",
        "hyperParameters",
        "exportLastCheckpointOnly",
        "evaluationConfig",
    }
)
_JOB_V1 = frozenset(
    {
        "baseModel",
        "preTunedModel",
        "supervisedTuningSpec",
        "name",
        "tunedModelDisplayName",
        "description",
        "state",
        "createTime",
        "startTime",
        "endTime",
        "updateTime",
        "error",
        "labels",
        "experiment",
        "tunedModel",
        "tuningDataStats",
        "encryptionSpec",
        "serviceAccount",
        "evaluateDatasetRuns",
    }
)
_JOB_V1BETA1_EXTRA = frozenset(
    {
        "distillationSpec",
        "partnerModelTuningSpec",
        "veoTuningSpec",
        "veoLoraTuningSpec",
        "customBaseModel",
        "pipelineJob",
        "outputUri",
    }
)


def _schema(job: frozenset[str], hyper: frozenset[str]) -> _Message:
    root = "tuning_job"
    spec_path = root + ".supervised_tuning_spec"
    hyper_message = _Message(spec_path + ".hyper_parameters", hyper)
    spec = _Message(spec_path, _SPEC_FIELDS, {"hyperParameters": hyper_message})
    return _Message(root, job, {"supervisedTuningSpec": spec})


_SCHEMAS = {
    V1: _schema(_JOB_V1, _HYPER_V1),
    V1BETA1: _schema(_JOB_V1 | _JOB_V1BETA1_EXTRA, _HYPER_V1 | {"learningRate", "batchSize"}),
}


@dataclass(frozen=True)
class HyperParameters:
    """Supervised tuning hyperparameters, defaults filled (``None``: not given, no default).

    Attributes:
        epoch_count: passes over the training set.
        adapter_size: an ``ADAPTER_SIZE_*`` name.
        learning_rate_multiplier: scales the recommended learning rate.
        batch_size: examples per step (v1beta1); the emulator's default when ``None``.
        learning_rate: an absolute learning rate (v1beta1).
    """

    epoch_count: int
    adapter_size: str
    learning_rate_multiplier: float | None
    batch_size: int | None = None
    learning_rate: float | None = None

    @property
    def effective_batch_size(self) -> int:
        """The batch size steps are counted with."""
        return self.batch_size or DEFAULT_BATCH_SIZE


@dataclass(frozen=True)
class TuningJobSpec:
    """A validated create request.

    Attributes:
        base_model: the catalogue's base model.
        training_uri: ``gs://bucket/object`` of the JSONL training set.
        validation_uri: of the validation set; empty when none.
        hyper: the hyperparameters.
        export_last_checkpoint_only: only the last epoch's checkpoint is kept.
        display_name: ``tunedModelDisplayName``.
        description: the job's description.
        labels: the caller's labels.
    """

    base_model: VertexBaseModel
    training_uri: str
    validation_uri: str
    hyper: HyperParameters
    export_last_checkpoint_only: bool
    display_name: str
    description: str
    labels: dict[str, str]


def parse_tuning_job(
    raw: JsonObject, api_version: str, catalogue: tuple[VertexBaseModel, ...], now_s: float
) -> TuningJobSpec:
    """The spec of a create body; 400 (with the offending field) if it is not acceptable."""
    body = normalised(raw, _SCHEMAS[api_version])
    if "preTunedModel" in body:
        raise ApiError(501, "Continued tuning (preTunedModel) is not emulated.")
    base_model = _base_model(body.get("baseModel"), catalogue, now_s)
    spec = body.get("supervisedTuningSpec")
    if not isinstance(spec, dict):
        raise invalid_argument("supervised_tuning_spec is required.", "supervised_tuning_spec")
    return TuningJobSpec(
        base_model=base_model,
        training_uri=_gs_uri(spec.get("trainingDatasetUri"), "training_dataset_uri", True),
        validation_uri=_gs_uri(spec.get("validationDatasetUri"), "validation_dataset_uri", False),
        hyper=_hyper(spec.get("hyperParameters", {}), base_model),
        export_last_checkpoint_only=_boolean(spec.get("exportLastCheckpointOnly", False)),
        display_name=_text(body, "tunedModelDisplayName", DISPLAY_NAME_MAX_CHARS),
        description=_text(body, "description", DESCRIPTION_MAX_CHARS),
        labels=parse_labels(body.get("labels", {})),
    )


def normalised(raw: JsonObject, message: _Message) -> JsonObject:
    """``raw`` with field names in camelCase and nulls dropped; 400 on an unknown field."""
    body: JsonObject = {}
    for key, value in raw.items():
        name = camel_case(str(key))
        if name not in message.fields:
            raise _unknown_field(str(key), message.path)
        if value is None:
            continue
        child = message.children.get(name)
        nested = child is not None and isinstance(value, dict)
        body[name] = normalised(value, child) if child is not None and nested else value
    return body


def parse_labels(value: Any) -> dict[str, str]:
    """At most 64 labels; keys and values of lowercase letters, digits, ``_`` and ``-``."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid_argument("labels must map strings to strings.", "labels")
    if len(value) > LABELS_MAX:
        raise invalid_argument(f"At most {LABELS_MAX} labels are allowed.", "labels")
    for key, item in value.items():
        _check_label(str(key), item)
    return {str(key): item for key, item in value.items()}


def _check_label(key: str, value: str) -> None:
    if not key or not (key[0].isalpha() and key[0].islower()):
        raise invalid_argument(f"Label key {_echo(key)!r} must start with a lowercase letter.")
    for text, what in ((key, "key"), (value, "value")):
        if len(text) > LABEL_MAX_CHARS:
            raise invalid_argument(
                f"Label {what} {_echo(text)!r} is longer than {LABEL_MAX_CHARS} characters."
            )
        if not all(_label_char(char) for char in text):
            raise invalid_argument(
                f"Label {what} {_echo(text)!r} may only contain lowercase letters, digits, "
                "underscores and dashes."
            )


def _label_char(char: str) -> bool:
    return char in "_-" or char.isdigit() or (char.isalpha() and char.islower())


def _base_model(
    value: Any, catalogue: tuple[VertexBaseModel, ...], now_s: float
) -> VertexBaseModel:
    if not isinstance(value, str) or not value:
        raise invalid_argument("base_model is required.", "base_model")
    found = next((model for model in catalogue if model.model_id == value), None)
    if found is None:
        raise invalid_argument(
            f"Base model {_echo(value)} is not supported for supervised tuning.", "base_model"
        )
    if found.retired_at(now_s):
        raise invalid_argument(
            f"Base model {value} was retired on {found.retired_on} and can no longer be tuned.",
            "base_model",
        )
    return found


def _gs_uri(value: Any, name: str, required: bool) -> str:
    path = f"supervised_tuning_spec.{name}"
    if value is None or value == "":
        if required:
            raise invalid_argument(f"{path} is required.", path)
        return ""
    if not isinstance(value, str) or parse_gs_uri(value) is None:
        raise invalid_argument(
            f"{path} must be a Cloud Storage URI (gs://bucket/object), got {_echo(value)!r}.",
            path,
        )
    return value


def _hyper(raw: Any, base_model: VertexBaseModel) -> HyperParameters:
    path = "supervised_tuning_spec.hyper_parameters"
    if not isinstance(raw, dict):
        raise invalid_argument(f"{path} must be an object.", path)
    rate = _optional_float(raw, "learningRate", path, LEARNING_RATE_MAX)
    multiplier = _optional_float(raw, "learningRateMultiplier", path, LEARNING_RATE_MULTIPLIER_MAX)
    if rate is not None and multiplier is not None:
        raise invalid_argument(
            "Only one of learning_rate and learning_rate_multiplier may be set.", path
        )
    batch = raw.get("batchSize")
    return HyperParameters(
        epoch_count=_int64(
            raw.get("epochCount", DEFAULT_EPOCH_COUNT), path + ".epoch_count", EPOCH_COUNT_RANGE
        ),
        adapter_size=_adapter_size(raw.get("adapterSize"), base_model),
        learning_rate_multiplier=1.0 if rate is None and multiplier is None else multiplier,
        batch_size=None if batch is None else _int64(batch, path + ".batch_size", BATCH_SIZE_RANGE),
        learning_rate=rate,
    )


def _int64(value: Any, path: str, bounds: tuple[int, int]) -> int:
    """An int64 within ``bounds``: a JSON number or a decimal string."""
    low, high = bounds
    number = value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value):
        number = int(value)
    if not isinstance(number, int) or isinstance(number, bool) or not low <= number <= high:
        raise invalid_argument(f"{path} must be an integer from {low} to {high}.", path)
    return number


def _optional_float(raw: JsonObject, key: str, path: str, high: float) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    name = f"{path}.{_snake(key)}"
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if not valid or not 0 < value <= high:
        raise invalid_argument(f"{name} must be a number above 0 and at most {high}.", name)
    return float(value)


def _adapter_size(value: Any, base_model: VertexBaseModel) -> str:
    path = "supervised_tuning_spec.hyper_parameters.adapter_size"
    name = ADAPTER_SIZE_NAME.get(value) if isinstance(value, int) else value
    if value is None or name == "ADAPTER_SIZE_UNSPECIFIED":
        name = DEFAULT_ADAPTER_SIZE
    if not isinstance(name, str) or name not in ADAPTER_SIZE_NUMBER:
        raise invalid_argument(f"Invalid value at '{path}': {_echo(str(value))}.", path)
    if name not in base_model.adapter_sizes:
        raise invalid_argument(ADAPTER_NOT_SUPPORTED, path)
    return name


def _text(body: JsonObject, key: str, max_chars: int) -> str:
    value = body.get(key, "")
    name = _snake(key)
    if not isinstance(value, str):
        raise invalid_argument(f"{name} must be a string.", name)
    if len(value) > max_chars:
        raise invalid_argument(f"{name} must be at most {max_chars} characters.", name)
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        path = "supervised_tuning_spec.export_last_checkpoint_only"
        raise invalid_argument(f"{path} must be true or false.", path)
    return value


def _unknown_field(name: str, path: str) -> ApiError:
    message = (
        f"Invalid JSON payload received. Unknown name \"{_echo(name)}\" at '{path}': "
        "Cannot find field."
    )
    return invalid_argument(message, path)


def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", lambda match: "_" + match.group(1).lower(), camel)


def _echo(text: str) -> str:
    """A caller's value, truncated for an error message."""
    return text if len(text) <= ECHO_MAX_CHARS else text[:ECHO_MAX_CHARS] + "…"
