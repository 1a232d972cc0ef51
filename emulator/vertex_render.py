"""JSON views of tuning jobs, tuned models, endpoints and their operations (proto3 JSON).

Defaults are omitted, int64 values are strings, timestamps RFC 3339 UTC with microseconds (as
Vertex prints them). Enums are names, or numbers when the caller asked for
``$alt=json;enum-encoding=int`` (``int_enums``). The sub-state ``tuningJobState`` is not in
the v1 proto, so only v1beta1 answers carry it; likewise ``batchSize`` and ``learningRate``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from emulator.errors import TYPE_PREFIX, JsonObject
from emulator.vertex_catalog import ADAPTER_SIZE_NUMBER
from emulator.vertex_spec import V1BETA1, HyperParameters
from emulator.vertex_store import TuningJobRecord
from emulator.vertex_training import JOB_STATE_NUMBER, JobState, JobView

_AIPLATFORM = TYPE_PREFIX + "google.cloud.aiplatform.v1."
DELETE_METADATA_TYPE = _AIPLATFORM + "DeleteOperationMetadata"
UNDEPLOY_METADATA_TYPE = _AIPLATFORM + "UndeployModelOperationMetadata"
UNDEPLOY_RESPONSE_TYPE = _AIPLATFORM + "UndeployModelResponse"
EMPTY_TYPE = TYPE_PREFIX + "google.protobuf.Empty"
MODEL_VERSION = "1"


def timestamp(epoch_s: float) -> str:
    """RFC 3339 UTC with six fractional digits: ``2026-11-21T13:40:00.000000Z``."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def tuning_job(
    record: TuningJobRecord, now_s: float, api_version: str, *, int_enums: bool = False
) -> JsonObject:
    """The TuningJob resource as seen at ``now_s``."""
    seen = record.view(now_s)
    spec = record.spec
    body: JsonObject = {"name": record.name, "baseModel": spec.base_model.model_id}
    body["supervisedTuningSpec"] = _supervised_spec(record, api_version, int_enums)
    _put(body, "tunedModelDisplayName", spec.display_name)
    _put(body, "description", spec.description)
    body["state"] = JOB_STATE_NUMBER[seen.state] if int_enums else str(seen.state)
    body |= _times(record, seen)
    if seen.error is not None:
        body["error"] = {"code": seen.error[0], "message": seen.error[1]}
    _put(body, "labels", dict(spec.labels))
    _put(body, "tunedModel", _tuned_model(record, seen))
    if record.stats and seen.start_s is not None:
        body["tuningDataStats"] = {"supervisedTuningDataStats": dict(record.stats)}
    if api_version == V1BETA1 and seen.sub_state:
        body["tuningJobState"] = seen.sub_state
    return body


def _times(record: TuningJobRecord, seen: JobView) -> JsonObject:
    body: JsonObject = {"createTime": timestamp(record.plan.create_s)}
    if seen.start_s is not None:
        body["startTime"] = timestamp(seen.start_s)
    if seen.end_s is not None:
        body["endTime"] = timestamp(seen.end_s)
    body["updateTime"] = timestamp(seen.update_s)
    return body


def _supervised_spec(record: TuningJobRecord, api_version: str, int_enums: bool) -> JsonObject:
    spec = record.spec
    body: JsonObject = {"trainingDatasetUri": spec.training_uri}
    _put(body, "validationDatasetUri", spec.validation_uri)
    body["hyperParameters"] = hyper_parameters(spec.hyper, api_version, int_enums)
    _put(body, "exportLastCheckpointOnly", spec.export_last_checkpoint_only)
    return body


def hyper_parameters(hyper: HyperParameters, api_version: str, int_enums: bool) -> JsonObject:
    """The hyperparameters with the emulator's defaults filled, for the API version."""
    size = hyper.adapter_size
    body: JsonObject = {"epochCount": str(hyper.epoch_count)}
    if hyper.learning_rate_multiplier is not None:
        body["learningRateMultiplier"] = hyper.learning_rate_multiplier
    body["adapterSize"] = ADAPTER_SIZE_NUMBER[size] if int_enums else size
    if api_version == V1BETA1:
        _put(body, "batchSize", str(hyper.batch_size or ""))
        _put(body, "learningRate", hyper.learning_rate)
    return body


def _tuned_model(record: TuningJobRecord, seen: JobView) -> JsonObject:
    """``tunedModel``: the model once uploaded; endpoints and checkpoints once succeeded."""
    if not seen.model_uploaded:
        return {}
    body: JsonObject = {"model": f"{record.model_name}@{MODEL_VERSION}"}
    if seen.state is not JobState.SUCCEEDED:
        return body
    body["endpoint"] = record.endpoint_name(record.endpoint_id)
    body["checkpoints"] = [
        {
            "checkpointId": checkpoint.checkpoint_id,
            "epoch": str(checkpoint.epoch),
            "step": str(checkpoint.step),
            "endpoint": record.endpoint_name(checkpoint.endpoint_id),
        }
        for checkpoint in record.checkpoints
    ]
    return body


def model(record: TuningJobRecord, now_s: float) -> JsonObject:
    """The tuned Model resource (version 1, the only one)."""
    seen = record.view(now_s)
    uploaded_s = seen.end_s if seen.end_s is not None else now_s
    body: JsonObject = {"name": record.model_name, "versionId": MODEL_VERSION}
    body["versionAliases"] = ["default"]
    body |= {"versionCreateTime": timestamp(uploaded_s), "versionUpdateTime": timestamp(uploaded_s)}
    _put(body, "displayName", record.spec.display_name or record.job_id)
    body |= {"createTime": timestamp(uploaded_s), "updateTime": timestamp(uploaded_s)}
    deployed = [
        {"endpoint": record.endpoint_name(e), "deployedModelId": record.deployed_model_ids[e]}
        for e in record.deployed_endpoints(now_s)
    ]
    _put(body, "deployedModels", deployed)
    body["defaultCheckpointId"] = record.checkpoints[-1].checkpoint_id
    _put(body, "checkpoints", _model_checkpoints(record, seen))
    return body


def _model_checkpoints(record: TuningJobRecord, seen: JobView) -> list[JsonObject]:
    if seen.state is not JobState.SUCCEEDED:
        return []
    return [
        {"checkpointId": c.checkpoint_id, "epoch": str(c.epoch), "step": str(c.step)}
        for c in record.checkpoints
    ]


def endpoint(record: TuningJobRecord, endpoint_id: str, now_s: float) -> JsonObject:
    """An Endpoint with the tuned model (at one checkpoint) deployed, unless undeployed."""
    seen = record.view(now_s)
    created_s = seen.end_s if seen.end_s is not None else now_s
    checkpoint = next(c for c in record.checkpoints if c.endpoint_id == endpoint_id)
    body: JsonObject = {"name": record.endpoint_name(endpoint_id)}
    suffix = "" if endpoint_id == record.endpoint_id else f" checkpoint {checkpoint.checkpoint_id}"
    body["displayName"] = (record.spec.display_name or record.job_id) + suffix
    deployed_id = record.deployed_model_ids[endpoint_id]
    if endpoint_id not in record.undeployed:
        body["deployedModels"] = [
            {
                "id": deployed_id,
                "model": record.model_name,
                "modelVersionId": MODEL_VERSION,
                "displayName": body["displayName"],
                "createTime": timestamp(created_s),
                "checkpointId": checkpoint.checkpoint_id,
            }
        ]
        body["trafficSplit"] = {deployed_id: 100}
    body["createTime"] = timestamp(created_s)
    body["updateTime"] = timestamp(record.undeployed.get(endpoint_id, created_s))
    return body


def done_operation(
    parent: str, operation_id: str, now_s: float, metadata_type: str, response_type: str
) -> JsonObject:
    """A finished long-running Operation (deletes and undeploys finish at once here)."""
    at = timestamp(now_s)
    return {
        "name": f"{parent}/operations/{operation_id}",
        "metadata": {
            "@type": metadata_type,
            "genericMetadata": {"createTime": at, "updateTime": at},
        },
        "done": True,
        "response": {"@type": response_type},
    }


def _put(body: JsonObject, key: str, value: object) -> None:
    """Set ``key`` unless the value is proto3's default (zero, false, empty)."""
    if value:
        body[key] = value
