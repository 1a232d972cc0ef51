"""JSON views of tuned models and operations, following proto3 JSON rules.

Zero, false and empty values are omitted (the first snapshot has no ``epoch``; a running
operation has no ``done``), int64 values are strings, timestamps are RFC 3339 with ``Z``.
``trainingData`` is input only and is never rendered.
"""

from __future__ import annotations

from emulator.errors import TYPE_PREFIX, JsonObject
from emulator.protojson import timestamp
from emulator.spec import Hyperparameters
from emulator.store import ModelRecord
from emulator.training import Outcome, Progress, Snapshot

METADATA_TYPE = TYPE_PREFIX + "google.ai.generativelanguage.v1beta.CreateTunedModelMetadata"
TUNED_MODEL_TYPE = TYPE_PREFIX + "google.ai.generativelanguage.v1beta.TunedModel"

MODEL_STATE = {
    Outcome.RUNNING: "CREATING",
    Outcome.SUCCEEDED: "ACTIVE",
    Outcome.FAILED: "FAILED",
    Outcome.CANCELLED: "FAILED",
}
# google.rpc.Code values and messages of operations that end without a model.
OPERATION_ERROR: dict[Outcome, JsonObject] = {
    Outcome.FAILED: {"code": 13, "message": "Tuning failed: emulated training failure."},
    Outcome.CANCELLED: {"code": 1, "message": "Operation cancelled."},
}


def model_state(record: ModelRecord, now_s: float) -> str:
    """CREATING while training, ACTIVE when done, FAILED if failed or cancelled."""
    return MODEL_STATE[record.progress(now_s).outcome]


def tuned_model(record: ModelRecord, now_s: float) -> JsonObject:
    """The TunedModel resource as seen at ``now_s``."""
    run = record.progress(now_s)
    fields = record.fields
    body: JsonObject = {"name": record.name, "baseModel": record.base_model}
    _put(body, "displayName", fields.display_name)
    _put(body, "description", fields.description)
    body |= {"temperature": fields.temperature, "topP": fields.top_p, "topK": fields.top_k}
    body["state"] = MODEL_STATE[run.outcome]
    body["createTime"] = timestamp(record.create_s)
    body["updateTime"] = timestamp(max(record.update_s, run.end_s or record.update_s))
    body["tuningTask"] = _tuning_task(record, run)
    _put(body, "readerProjectNumbers", [str(n) for n in record.reader_project_numbers])
    return body


def operation(record: ModelRecord, now_s: float) -> JsonObject:
    """The create operation as seen at ``now_s``: ``done`` with a response or an error."""
    run = record.progress(now_s)
    body: JsonObject = {"name": record.operation_name, "metadata": _metadata(record, run)}
    if not run.done:
        return body
    body["done"] = True
    if run.outcome is Outcome.SUCCEEDED:
        body["response"] = {"@type": TUNED_MODEL_TYPE} | tuned_model(record, now_s)
    else:
        body["error"] = dict(OPERATION_ERROR[run.outcome])
    return body


def _metadata(record: ModelRecord, run: Progress) -> JsonObject:
    body: JsonObject = {"@type": METADATA_TYPE, "totalSteps": run.total_steps}
    body["tunedModel"] = record.name
    _put(body, "completedSteps", run.completed_steps)
    _put(body, "completedPercent", run.completed_percent)
    _put(body, "snapshots", [snapshot(s) for s in run.snapshots])
    return body


def _tuning_task(record: ModelRecord, run: Progress) -> JsonObject:
    body: JsonObject = {"startTime": timestamp(record.plan.start_s)}
    if run.end_s is not None:
        body["completeTime"] = timestamp(run.end_s)
    _put(body, "snapshots", [snapshot(s) for s in run.snapshots])
    body["hyperparameters"] = hyperparameters(record.hyperparameters)
    return body


def snapshot(item: Snapshot) -> JsonObject:
    """One TuningSnapshot; ``epoch`` is omitted when zero."""
    body: JsonObject = {"step": item.step}
    _put(body, "epoch", item.epoch)
    body["meanLoss"] = item.mean_loss
    body["computeTime"] = timestamp(item.compute_time_s)
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
