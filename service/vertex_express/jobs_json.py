"""Vertex AI's TuningJob JSON and tuning.v1's TuningJob: the facade's one mapping of them.

In: a `tuningJobs.create` body, as google-genai's `tunings.tune` sends it (supervised
tuning only), becomes a tuning.v1 CreateTuningJobRequest that the platform validates as
it validates any other (service.jobs_api): only the shape is checked here. Each field
must be one the platform has; any other (preference tuning, distillation, a pre-tuned
model, encryption, an output URI, ...) is INVALID_ARGUMENT naming it, never ignored. The
training data is named by `supervisedTuningSpec.trainingDatasetUri`, which must be a
dataset uploaded to the platform (`datasets/{id}`, UploadDataset): the platform does not
read callers' buckets, so a `gs://` URI is refused. The platform's violations name
tuning.v1's fields; `vertex_violations` renames them to the body's (FIELD_PATHS).

Out: a tuning.v1 TuningJob becomes Vertex AI's TuningJob resource in proto3 JSON (int64
values as strings, enums by name, RFC 3339 times), named as service.vertex_express.names
says, its state one of Vertex's JOB_STATE_*.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from google.protobuf import json_format

from core.errors import ECHO_MAX_CHARS, FieldViolation, InvalidArgument, echo
from service.vertex_express import names
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

Json = dict[str, Any]
TuningJob = tuning_job_pb2.TuningJob
State = TuningJob.State

DATASET_PREFIX = "datasets/"
GCS_PREFIX = "gs://"
SPEC = "supervisedTuningSpec"
HYPER = f"{SPEC}.hyperParameters"
TRAINING_URI = f"{SPEC}.trainingDatasetUri"
VALIDATION_URI = f"{SPEC}.validationDatasetUri"
JOB_FIELDS = frozenset({"baseModel", SPEC, "tunedModelDisplayName", "description", "labels"})
SPEC_FIELDS = frozenset(
    {"trainingDatasetUri", "validationDatasetUri", "hyperParameters", "exportLastCheckpointOnly"}
)
HYPER_FIELDS = frozenset(
    {"epochCount", "batchSize", "learningRate", "learningRateMultiplier", "adapterSize"}
)
ADAPTER_SIZES: Mapping[str, int] = {
    "ADAPTER_SIZE_ONE": 1,
    "ADAPTER_SIZE_TWO": 2,
    "ADAPTER_SIZE_FOUR": 4,
    "ADAPTER_SIZE_EIGHT": 8,
    "ADAPTER_SIZE_SIXTEEN": 16,
    "ADAPTER_SIZE_THIRTY_TWO": 32,
}
"""Vertex AI's AdapterSize names; the platform's validation decides which it accepts."""
ADAPTER_SIZE_NAMES = {size: name for name, size in ADAPTER_SIZES.items()}
VERTEX_STATES: Mapping[int, str] = {
    State.STATE_UNSPECIFIED: "JOB_STATE_UNSPECIFIED",
    State.QUEUED: "JOB_STATE_QUEUED",
    State.CREATING: "JOB_STATE_PENDING",
    State.RUNNING: "JOB_STATE_RUNNING",
    State.SUCCEEDED: "JOB_STATE_SUCCEEDED",
    State.FAILED: "JOB_STATE_FAILED",
    State.CANCELLING: "JOB_STATE_CANCELLING",
    State.CANCELLED: "JOB_STATE_CANCELLED",
}
FIELD_PATHS: tuple[tuple[str, str], ...] = (
    ("tuning_job.hyperparameters.epoch_count", f"{HYPER}.epochCount"),
    ("tuning_job.hyperparameters.batch_size", f"{HYPER}.batchSize"),
    ("tuning_job.hyperparameters.learning_rate_multiplier", f"{HYPER}.learningRateMultiplier"),
    ("tuning_job.hyperparameters.learning_rate", f"{HYPER}.learningRate"),
    ("tuning_job.hyperparameters.adapter_size", f"{HYPER}.adapterSize"),
    ("tuning_job.hyperparameters", HYPER),
    ("tuning_job.base_model", "baseModel"),
    ("tuning_job.display_name", "tunedModelDisplayName"),
    ("tuning_job.description", "description"),
    ("tuning_job.labels", "labels"),
    ("tuning_job.validation_dataset", VALIDATION_URI),
    ("tuning_job.dataset", TRAINING_URI),
    ("tuning_job.training_examples", TRAINING_URI),
    ("tuning_job.export_last_checkpoint_only", f"{SPEC}.exportLastCheckpointOnly"),
)
"""tuning.v1's field paths in violations, and the create body's (first match wins)."""


# In: the create body.


def create_request(body: object) -> tuning_service_pb2.CreateTuningJobRequest:
    """The tuning.v1 create for a Vertex AI `tuningJobs.create` body; InvalidArgument
    naming every field of the wrong shape, or one the platform does not have."""
    job = TuningJob()
    violations = list(_job(body, job))
    if violations:
        first = violations[0]
        raise InvalidArgument(
            f"invalid TuningJob: {first.field}: {first.description}", violations[:20]
        )
    return tuning_service_pb2.CreateTuningJobRequest(tuning_job=job)


Violations = Iterator[FieldViolation]


def _job(body: object, job: TuningJob) -> Violations:
    if not isinstance(body, dict):
        yield FieldViolation("request", "must be a JSON object (a TuningJob)")
        return
    yield from _unknown(body, JOB_FIELDS, "")
    yield from _text(body, "baseModel", "base_model", job)
    yield from _text(body, "tunedModelDisplayName", "display_name", job)
    yield from _text(body, "description", "description", job)
    yield from _labels(body.get("labels"), job)
    spec = body.get(SPEC)
    if not isinstance(spec, dict):
        yield FieldViolation(SPEC, "required: a JSON object naming trainingDatasetUri")
        return
    yield from _unknown(spec, SPEC_FIELDS, f"{SPEC}.")
    yield from _dataset(spec.get("trainingDatasetUri"), TRAINING_URI, job, "dataset")
    if "validationDatasetUri" in spec:
        yield from _dataset(spec["validationDatasetUri"], VALIDATION_URI, job, "validation_dataset")
    if "exportLastCheckpointOnly" in spec:
        flag = spec["exportLastCheckpointOnly"]
        if not isinstance(flag, bool):
            yield FieldViolation(f"{SPEC}.exportLastCheckpointOnly", "must be true or false")
        else:
            job.export_last_checkpoint_only = flag
    if "hyperParameters" in spec:
        yield from _hyper(spec["hyperParameters"], job.hyperparameters)


def _unknown(body: Mapping[str, Any], known: frozenset[str], path: str) -> Violations:
    for key in body:
        if key not in known:
            yield FieldViolation(
                f"{path}{key[:ECHO_MAX_CHARS]}",
                "not supported by this platform (Vertex AI express facade)",
            )


def _text(body: Mapping[str, Any], key: str, field: str, job: TuningJob) -> Violations:
    value = body.get(key)
    if value is None:
        return
    if not isinstance(value, str):
        yield FieldViolation(key, "must be a string")
    else:
        setattr(job, field, value)


def _labels(labels: object, job: TuningJob) -> Violations:
    if labels is None:
        return
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        yield FieldViolation("labels", "must be an object of string values")
    else:
        job.labels.update(labels)  # the platform bounds their count and shapes


def _dataset(uri: object, field: str, job: TuningJob, into: str) -> Violations:
    if not isinstance(uri, str) or not uri:
        yield FieldViolation(
            field, "required: datasets/{id} of a dataset uploaded with UploadDataset"
        )
    elif uri.startswith(GCS_PREFIX):
        yield FieldViolation(
            field,
            f"{echo(uri)}: this platform does not read Cloud Storage; upload the examples "
            "with UploadDataset and name the dataset (datasets/{id})",
        )
    else:
        setattr(job, into, uri)  # the platform checks the shape and that it exists


def _hyper(hyper: object, into: tuning_job_pb2.Hyperparameters) -> Violations:
    if not isinstance(hyper, dict):
        yield FieldViolation(HYPER, "must be a JSON object")
        return
    yield from _unknown(hyper, HYPER_FIELDS, f"{HYPER}.")
    for key, field in (("epochCount", "epoch_count"), ("batchSize", "batch_size")):
        if key in hyper:
            number = _integer(hyper[key])
            if number is None:
                yield FieldViolation(f"{HYPER}.{key}", "must be an integer")
            else:
                setattr(into, field, number)
    for key, field in (
        ("learningRate", "learning_rate"),
        ("learningRateMultiplier", "learning_rate_multiplier"),
    ):
        if key in hyper:
            value = hyper[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                yield FieldViolation(f"{HYPER}.{key}", "must be a number")
            else:
                setattr(into, field, float(value))
    if "adapterSize" in hyper:
        size = (
            ADAPTER_SIZES.get(hyper["adapterSize"])
            if isinstance(hyper["adapterSize"], str)
            else None
        )
        if size is None:
            yield FieldViolation(
                f"{HYPER}.adapterSize", f"must be one of {', '.join(ADAPTER_SIZES)}"
            )
        else:
            into.adapter_size = size


INT32_MAX = 2**31 - 1


def _integer(value: object) -> int | None:
    """An int32 written as a JSON number or a decimal string (proto3 JSON takes both)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and 0 < len(value) <= 11 and value.lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and -INT32_MAX <= value <= INT32_MAX:
        return value
    return None


def vertex_violations(error: InvalidArgument) -> InvalidArgument:
    """`error` with its violations naming the create body's fields instead of tuning.v1's."""
    renamed = [FieldViolation(_vertex_path(v.field), v.description) for v in error.violations]
    found = InvalidArgument(error.message, renamed, reason=error.reason)
    found.metadata = error.metadata
    return found


def _vertex_path(field: str) -> str:
    for ours, theirs in FIELD_PATHS:
        if field == ours or field.startswith((ours + ".", ours + "[")):
            return theirs + field[len(ours) :]
    return field


# Out: the TuningJob resource.


def job_json(tenant: str, job: TuningJob) -> Json:
    """Vertex AI's TuningJob resource for the tenant's `job`."""
    job_id = job.name.rpartition("/")[2]
    body: Json = {"name": names.job_name(tenant, job_id), "baseModel": job.base_model}
    body[SPEC] = _spec_json(job)
    _put(body, "tunedModelDisplayName", job.display_name)
    _put(body, "description", job.description)
    body["state"] = VERTEX_STATES.get(job.state, "JOB_STATE_UNSPECIFIED")
    for key, time in (
        ("createTime", job.create_time),
        ("startTime", job.start_time),
        ("endTime", job.end_time),
        ("updateTime", job.update_time),
    ):
        if time.seconds or time.nanos:
            body[key] = time.ToJsonString()
    if job.HasField("error"):
        body["error"] = json_format.MessageToDict(job.error)
    _put(body, "labels", dict(job.labels))
    _put(body, "tunedModel", _tuned_model(tenant, job_id, job))
    if job.HasField("tuning_data_stats"):
        body["tuningDataStats"] = {"supervisedTuningDataStats": _stats(job.tuning_data_stats)}
    if job.waiting_reason:
        body["tuningJobState"] = "TUNING_JOB_STATE_WAITING_FOR_QUOTA"
    return body


def _spec_json(job: TuningJob) -> Json:
    spec: Json = {}
    _put(spec, "trainingDatasetUri", job.dataset)
    _put(spec, "validationDatasetUri", job.validation_dataset)
    hyper = job.hyperparameters
    values: Json = {}
    if hyper.HasField("epoch_count"):
        values["epochCount"] = str(hyper.epoch_count)
    if hyper.HasField("batch_size"):
        values["batchSize"] = str(hyper.batch_size)
    which = hyper.WhichOneof("learning_rate_option")
    if which == "learning_rate":
        values["learningRate"] = hyper.learning_rate
    elif which == "learning_rate_multiplier":
        values["learningRateMultiplier"] = hyper.learning_rate_multiplier
    if hyper.HasField("adapter_size"):
        values["adapterSize"] = ADAPTER_SIZE_NAMES.get(
            hyper.adapter_size, "ADAPTER_SIZE_UNSPECIFIED"
        )
    _put(spec, "hyperParameters", values)
    _put(spec, "exportLastCheckpointOnly", job.export_last_checkpoint_only)
    return spec


def _tuned_model(tenant: str, job_id: str, job: TuningJob) -> Json:
    """The model once the job made one; the endpoints (the job's, its checkpoints')
    once it SUCCEEDED, which is when the platform's GenerateContent can call them."""
    if not job.tuned_model:
        return {}
    body: Json = {"model": names.model_name(tenant, job_id)}
    if job.state != State.SUCCEEDED:
        return body
    body["endpoint"] = names.endpoint_name(tenant, job_id)
    _put(
        body,
        "checkpoints",
        [
            {
                "checkpointId": c.checkpoint_id,
                "epoch": str(c.epoch),
                "step": str(c.step),
                "endpoint": names.endpoint_name(tenant, job_id, c.checkpoint_id),
            }
            for c in job.checkpoints
        ],
    )
    return body


def _stats(stats: tuning_job_pb2.TuningDataStats) -> Json:
    body: Json = {}
    for key, value in (
        ("tuningDatasetExampleCount", stats.example_count),
        ("totalTuningCharacterCount", stats.total_characters),
        ("totalBillableTokenCount", stats.billable_tokens),
        ("tuningStepCount", stats.step_count),
    ):
        _put(body, key, str(value) if value else "")
    return body


def _put(body: Json, key: str, value: object) -> None:
    """Set `key` unless the value is proto3's default (zero, false, empty)."""
    if value:
        body[key] = value
