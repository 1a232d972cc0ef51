"""Vertex AI's JSON (aiplatform v1 `TuningJob`, proto3 JSON) to and from the domain types.

States: every `JOB_STATE_*` of job_state.proto has its `UpstreamState` in `STATES`. The
choices the reference leaves open, made here:

- QUEUED, PENDING, RUNNING, UPDATING: not ended, so RUNNING.
- CANCELLING: RUNNING. The cancel was asked for, but the job may still finish as it
  likes (it may even succeed), and only its end says how ours ends.
- PAUSED: RUNNING. A paused job can be resumed; it has not ended, so we keep polling.
- PARTIALLY_SUCCEEDED: SUCCEEDED. It made a tuned model that can be used.
- EXPIRED: FAILED (it ended without a model), with the job's error if it has one.
- UNSPECIFIED, and any state newer than this module: RUNNING, so the job is looked at
  again rather than ended on a word we do not know.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import orjson
from google.rpc import code_pb2

from core.domain.job import Checkpoint, DataStats, Example, Progress
from core.domain.upstream import TunedOutputs, UpstreamRef, UpstreamState, UpstreamStatus
from core.errors import JobError, Reason, UpstreamRejected
from core.upstream_http import parse_time
from worker.provider import TuningRequest

Json = dict[str, Any]

JOB_STATE_PREFIX = "JOB_STATE_"
STATES: dict[str, UpstreamState] = {
    "JOB_STATE_UNSPECIFIED": UpstreamState.RUNNING,
    "JOB_STATE_QUEUED": UpstreamState.RUNNING,
    "JOB_STATE_PENDING": UpstreamState.RUNNING,
    "JOB_STATE_RUNNING": UpstreamState.RUNNING,
    "JOB_STATE_CANCELLING": UpstreamState.RUNNING,
    "JOB_STATE_PAUSED": UpstreamState.RUNNING,
    "JOB_STATE_UPDATING": UpstreamState.RUNNING,
    "JOB_STATE_SUCCEEDED": UpstreamState.SUCCEEDED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": UpstreamState.SUCCEEDED,
    "JOB_STATE_FAILED": UpstreamState.FAILED,
    "JOB_STATE_EXPIRED": UpstreamState.FAILED,
    "JOB_STATE_CANCELLED": UpstreamState.CANCELLED,
}
ENDED = frozenset(
    {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)
"""The terminal states (job_state.proto; PARTIALLY_SUCCEEDED is not one of them there)."""

ADAPTER_SIZES = {
    1: "ADAPTER_SIZE_ONE",
    2: "ADAPTER_SIZE_TWO",
    4: "ADAPTER_SIZE_FOUR",
    8: "ADAPTER_SIZE_EIGHT",
    16: "ADAPTER_SIZE_SIXTEEN",
    32: "ADAPTER_SIZE_THIRTY_TWO",
}
"""The adapter sizes v1 accepts, by their number (0: the upstream's default)."""
MAX_DISPLAY_NAME_CHARS = 128
BASE_MODEL_PREFIX = "models/"
"""The Gemini API's form of a base model name; Vertex AI takes the bare id."""


def training_lines(examples: Iterable[Example], system_instruction: str = "") -> Iterator[bytes]:
    """The training file, one JSONL line per example, made as it is read."""
    system = {"systemInstruction": {"parts": [{"text": system_instruction}]}}
    for example in examples:
        line: Json = system.copy() if system_instruction else {}
        line["contents"] = [
            {"role": "user", "parts": [{"text": example.text_input}]},
            {"role": "model", "parts": [{"text": example.output}]},
        ]
        yield orjson.dumps(line) + b"\n"


async def training_lines_of(
    batches: AsyncIterator[list[Example]], system_instruction: str = ""
) -> AsyncIterator[bytes]:
    """The training file of examples read a batch at a time: one chunk per batch."""
    async for batch in batches:
        yield b"".join(training_lines(batch, system_instruction))


def tuning_job_body(
    request: TuningRequest,
    dataset_uri: str,
    labels: dict[str, str],
    validation_uri: str = "",
) -> Json:
    """The TuningJob to create; unset hyperparameters are left to the upstream's defaults.

    UpstreamRejected, before anything is sent, for what v1 cannot express: a batch size
    or an absolute learning rate (v1beta1 only), an adapter size it does not know.
    """
    spec: Json = {
        "trainingDatasetUri": dataset_uri,
        "hyperParameters": _hyper_parameters(request),
    }
    if request.export_last_checkpoint_only:
        spec["exportLastCheckpointOnly"] = True
    if validation_uri:
        spec["validationDatasetUri"] = validation_uri
    body: Json = {
        "baseModel": request.base_model.removeprefix(BASE_MODEL_PREFIX),
        "supervisedTuningSpec": spec,
        "labels": labels,
    }
    if request.display_name:
        body["tunedModelDisplayName"] = request.display_name[:MAX_DISPLAY_NAME_CHARS]
    if request.description:
        body["description"] = request.description
    return body


def _hyper_parameters(request: TuningRequest) -> Json:
    h = request.hyperparameters
    adapter_size = h.adapter_size or 0
    if h.batch_size or h.learning_rate is not None:
        raise UpstreamRejected(
            "Vertex AI v1 tuning sets neither a batch size nor an absolute learning rate: "
            "leave them unset (a learning rate multiplier is accepted)"
        )
    hyper: Json = {}
    if h.epoch_count:
        hyper["epochCount"] = str(h.epoch_count)  # int64: a JSON string.
    if h.learning_rate_multiplier is not None:
        hyper["learningRateMultiplier"] = h.learning_rate_multiplier
    if adapter_size:
        if adapter_size not in ADAPTER_SIZES:
            raise UpstreamRejected(f"no adapter size {adapter_size}: one of {list(ADAPTER_SIZES)}")
        hyper["adapterSize"] = ADAPTER_SIZES[adapter_size]
    return hyper


def state_of(job: Json) -> str:
    return str(job.get("state") or "JOB_STATE_UNSPECIFIED")


def ended(job: Json) -> bool:
    """Whether the tuning job is over: nothing it makes from now on."""
    return state_of(job) in ENDED


def status_from_tuning_job(job: Json, model_id: str = "") -> UpstreamStatus:
    """A TuningJob from create, get or list, read as a status."""
    name = str(job.get("name", ""))
    state = STATES.get(state_of(job), UpstreamState.RUNNING)
    ref = UpstreamRef(tuned_model=name, operation=name, model_id=model_id)
    return UpstreamStatus(
        ref=ref,
        state=state,
        progress=progress(job),
        error=_job_error(job) if state in (UpstreamState.FAILED, UpstreamState.CANCELLED) else None,
        start_time=parse_time(job.get("startTime")),
        end_time=parse_time(job.get("endTime")),
        outputs=outputs(job),
    )


def outputs(job: Json) -> TunedOutputs:
    """The tuned model, its endpoint and checkpoints, and the data statistics, as far as
    the TuningJob has them (int64 fields come as JSON strings)."""
    tuned = job.get("tunedModel", {})
    checkpoints = tuple(
        Checkpoint(
            checkpoint_id=str(c.get("checkpointId", "")),
            epoch=int(c.get("epoch", 0)),
            step=int(c.get("step", 0)),
            endpoint=str(c.get("endpoint", "")),
        )
        for c in tuned.get("checkpoints", [])
    )
    stats = job.get("tuningDataStats", {}).get("supervisedTuningDataStats")
    data_stats = None
    if stats:
        data_stats = DataStats(
            example_count=int(stats.get("tuningDatasetExampleCount", 0)),
            total_characters=int(stats.get("totalTuningCharacterCount", 0)),
            billable_tokens=int(stats.get("totalBillableTokenCount", 0)),
            step_count=int(stats.get("tuningStepCount", 0)),
        )
    model, endpoint = str(tuned.get("model", "")), str(tuned.get("endpoint", ""))
    return TunedOutputs(model, endpoint, checkpoints, data_stats)


def progress(job: Json) -> Progress:
    """Steps done (`tuningJobMetadata`, optional: not in the public v1 proto) of the steps
    planned (`tuningDataStats`); a job that ended well is all done."""
    done = int(job.get("tuningJobMetadata", {}).get("completedStepCount", 0))
    stats = job.get("tuningDataStats", {}).get("supervisedTuningDataStats", {})
    total = int(stats.get("tuningStepCount", 0))
    if STATES.get(state_of(job)) == UpstreamState.SUCCEEDED and total:
        done = max(done, total)
    percent = min(100.0, 100.0 * done / total) if total else 0.0
    return Progress(completed_steps=done, total_steps=total, completed_percent=percent)


def _job_error(job: Json) -> JobError:
    error = job.get("error") or {}
    code = int(error.get("code", code_pb2.UNKNOWN))
    state = state_of(job).removeprefix(JOB_STATE_PREFIX)
    message = str(error.get("message") or f"the tuning job ended {state}")
    return JobError.of(Reason.UPSTREAM_TUNING_FAILED, f"upstream: {message}", code=code)


def endpoints_of(job: Json) -> list[str]:
    """Every endpoint the job made: its tuned model's and each checkpoint's, once each."""
    tuned = job.get("tunedModel", {})
    found = [str(tuned.get("endpoint", ""))]
    found += [str(c.get("endpoint", "")) for c in tuned.get("checkpoints", [])]
    return list(dict.fromkeys(e for e in found if e))


def model_of(job: Json) -> str:
    """The tuned model the job uploaded ("" if none yet), without its `@version`."""
    return str(job.get("tunedModel", {}).get("model", "")).partition("@")[0]
