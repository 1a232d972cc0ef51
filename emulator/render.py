"""JSON views of tuned models and operations, following proto3 JSON rules.

Zero, false and empty values are omitted (the first snapshot has no ``epoch``; a running
operation has no ``done``), int64 values are strings, timestamps are RFC 3339 with ``Z``.
``trainingData`` is input only and is never rendered.

Enums are names by default. A caller that asks for ``$alt=json;enum-encoding=int`` (Google's
generated clients do, on every call) gets their numbers instead, as Google's front end
answers it: ``int_enums=True`` below.
"""

from __future__ import annotations

from emulator.errors import TYPE_PREFIX, JsonObject
from emulator.protojson import timestamp
from emulator.spec import Hyperparameters
from emulator.store import ModelRecord
from emulator.training import Outcome, Progress

METADATA_TYPE = TYPE_PREFIX + "google.ai.generativelanguage.v1beta.CreateTunedModelMetadata"
TUNED_MODEL_TYPE = TYPE_PREFIX + "google.ai.generativelanguage.v1beta.TunedModel"

MODEL_STATE = {
    Outcome.RUNNING: "CREATING",
    Outcome.SUCCEEDED: "ACTIVE",
    Outcome.FAILED: "FAILED",
    Outcome.CANCELLED: "FAILED",
}
# TunedModel.State numbers, for callers asking for enums as integers.
MODEL_STATE_NUMBER = {"STATE_UNSPECIFIED": 0, "CREATING": 1, "ACTIVE": 2, "FAILED": 3}
# google.rpc.Code values of operations that end without a model.
CODE_INTERNAL = 13
CODE_CANCELLED = 1
CANCELLED_MESSAGE = "Operation cancelled."


def model_state(record: ModelRecord, now_s: float) -> str:
    """CREATING while training, ACTIVE when done, FAILED if failed or cancelled."""
    return MODEL_STATE[record.progress(now_s).outcome]


def tuned_model(record: ModelRecord, now_s: float, *, int_enums: bool = False) -> JsonObject:
    """The TunedModel resource as seen at ``now_s`` (``state`` a number if ``int_enums``)."""
    run = record.progress(now_s)
    fields = record.fields
    body: JsonObject = {"name": record.name, "baseModel": record.base_model}
    _put(body, "displayName", fields.display_name)
    _put(body, "description", fields.description)
    body |= {"temperature": fields.temperature, "topP": fields.top_p, "topK": fields.top_k}
    state = MODEL_STATE[run.outcome]
    body["state"] = MODEL_STATE_NUMBER[state] if int_enums else state
    body["createTime"] = timestamp(record.create_s)
    body["updateTime"] = timestamp(max(record.update_s, run.end_s or record.update_s))
    body["tuningTask"] = _tuning_task(record, run)
    _put(body, "readerProjectNumbers", [str(n) for n in record.reader_project_numbers])
    return body


def operation(record: ModelRecord, now_s: float, *, int_enums: bool = False) -> JsonObject:
    """The create operation as seen at ``now_s``: ``done`` with a response or an error."""
    run = record.progress(now_s)
    body: JsonObject = {"name": record.operation_name, "metadata": _metadata(record, run)}
    if not run.done:
        return body
    body["done"] = True
    if run.outcome is Outcome.SUCCEEDED:
        model = tuned_model(record, now_s, int_enums=int_enums)
        body["response"] = {"@type": TUNED_MODEL_TYPE} | model
    elif run.outcome is Outcome.CANCELLED:
        body["error"] = {"code": CODE_CANCELLED, "message": CANCELLED_MESSAGE}
    else:
        body["error"] = {"code": CODE_INTERNAL, "message": record.failure_message}
    return body


def _metadata(record: ModelRecord, run: Progress) -> JsonObject:
    body: JsonObject = {"@type": METADATA_TYPE, "totalSteps": run.total_steps}
    body["tunedModel"] = record.name
    _put(body, "completedSteps", run.completed_steps)
    _put(body, "completedPercent", run.completed_percent)
    _put(body, "snapshots", record.rendered.upto(run.completed_steps))
    return body


def _tuning_task(record: ModelRecord, run: Progress) -> JsonObject:
    body: JsonObject = {"startTime": timestamp(record.plan.start_s)}
    if run.end_s is not None:
        body["completeTime"] = timestamp(run.end_s)
    _put(body, "snapshots", record.rendered.upto(run.completed_steps))
    body["hyperparameters"] = hyperparameters(record.hyperparameters)
    return body


def hyperparameters(hyper: Hyperparameters) -> JsonObject:
    """Hyperparameters with defaults filled; one of the learning-rate fields."""
    body: JsonObject = {"epochCount": hyper.epoch_count, "batchSize": hyper.batch_size}
    if hyper.learning_rate_multiplier is not None:
        body["learningRateMultiplier"] = hyper.learning_rate_multiplier
    else:
        body["learningRate"] = hyper.learning_rate
    return body


def _put(body: JsonObject, key: str, value: object) -> None:
    """Set ``key`` unless the value is proto3's default (zero, empty)."""
    if value:
        body[key] = value
