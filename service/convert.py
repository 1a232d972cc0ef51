"""Between the API's messages and the job record."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from google.protobuf import timestamp_pb2

from core.domain.job import JOB_NAME_PREFIX, DataStats, Hyperparameters, Job
from core.domain.loss_curve import job_advice
from core.domain.providers import ProviderChoice, ProviderKind
from core.domain.snapshots import Snapshots
from core.domain.states import JobState
from core.errors import to_status
from core.runtime import tracing
from service.dataset_store import DatasetRecord
from tuning.v1 import dataset_pb2, tuning_job_pb2, tuning_service_pb2

if TYPE_CHECKING:
    from service.create_preparation import PreparedCreate

State = tuning_job_pb2.TuningJob.State
Provider = tuning_job_pb2.TuningJob.Provider
PROVIDERS = {ProviderKind.GEMINI_API: Provider.GEMINI_API, ProviderKind.VERTEX: Provider.VERTEX_AI}
"""How the API names each provider kind of the tenants file."""
STATES = {state: State.Value(state.value) for state in JobState}
"""Each stored state's value in the API (the same names)."""


def request_hash(request: tuning_service_pb2.CreateTuningJobRequest) -> str:
    """Fingerprint of what a request asks for, to tell a retry from a different job."""
    payload = request.tuning_job.SerializeToString(deterministic=True)
    return hashlib.sha256(payload).hexdigest()


def job_from_request(
    prepared: PreparedCreate, *, tenant: str, job_id: str, now: float, provider: ProviderChoice
) -> Job:
    """The job record a validated, prepared request describes (its examples are
    `prepared.examples`, already encoded), to be tuned on the tenant's `provider`.
    Output-only fields are ignored."""
    spec = prepared.request.tuning_job
    return Job(
        id=job_id,
        tenant=tenant,
        base_model=spec.base_model,
        display_name=spec.display_name,
        description=spec.description,
        hyperparameters=_hyperparameters(spec.hyperparameters),
        labels=dict(spec.labels),
        example_count=prepared.example_count,
        dataset=spec.dataset,
        request_hash=prepared.request_hash,
        create_time=now,
        update_time=now,
        system_instruction=spec.system_instruction,
        validation_dataset=spec.validation_dataset,
        export_last_checkpoint_only=spec.export_last_checkpoint_only,
        provider=provider,
        prompt_template=spec.prompt_template,
        traceparent=tracing.current_traceparent(),
    )


def _hyperparameters(h: tuning_job_pb2.Hyperparameters) -> Hyperparameters:
    chosen = h.WhichOneof("learning_rate_option")
    return Hyperparameters(
        epoch_count=h.epoch_count,
        batch_size=h.batch_size,
        learning_rate=h.learning_rate if chosen == "learning_rate" else None,
        learning_rate_multiplier=(
            h.learning_rate_multiplier if chosen == "learning_rate_multiplier" else None
        ),
        adapter_size=h.adapter_size if h.HasField("adapter_size") else None,
    )


def job_to_proto(job: Job, queue_position: int = 0) -> tuning_job_pb2.TuningJob:
    """The job as callers see it (never the training examples).

    Only the fields the job has are given to the constructor: each one given costs, and
    a new job has few (this runs on every create and every uncached read)."""
    message = tuning_job_pb2.TuningJob(
        queue_position=queue_position,
        name=job.name,
        base_model=job.base_model,
        hyperparameters=hyperparameters_to_proto(job.hyperparameters),
        state=STATES[job.state],
        progress=_progress_to_proto(job),
        provider=PROVIDERS[job.provider.kind],
        **_texts_set(job),
    )
    if job.labels:
        message.labels.update(job.labels)
    _set_model_outputs(message, job)
    if job.snapshots:
        for step, epoch, loss, at in snapshot_rows(job):
            snapshot = message.snapshots.add(step=step, epoch=epoch, mean_loss=loss)
            _set_time(snapshot.compute_time, at)
    _set_advice(message, job)
    if job.error is not None:
        message.error.CopyFrom(to_status(job.error))
    _set_time(message.create_time, job.create_time)
    _set_time(message.update_time, job.update_time)
    _set_time(message.start_time, job.start_time)
    _set_time(message.end_time, job.end_time)
    _set_time(message.status_fetch_time, job.status_fetch_time)
    _set_time(message.stalled_since, job.stalled_since)
    return message


def _texts_set(job: Job) -> dict[str, Any]:
    """The job's optional text (and flag) fields that are not empty, by proto field."""
    texts: dict[str, Any] = {
        "display_name": job.display_name,
        "description": job.description,
        "dataset": job.dataset,
        "tuned_model": job.tuned_model_name or job.tuned_model,
        "system_instruction": job.system_instruction,
        "validation_dataset": job.validation_dataset,
        "export_last_checkpoint_only": job.export_last_checkpoint_only,
        "waiting_reason": waiting_reason(job),
        "prompt_template": job.prompt_template,
        "source_job": job.source_job and JOB_NAME_PREFIX + job.source_job,
    }
    return {name: value for name, value in texts.items() if value}


def _progress_to_proto(job: Job) -> tuning_job_pb2.Progress:
    p = job.progress
    if not (p.completed_steps or p.total_steps or p.completed_percent):
        return tuning_job_pb2.Progress()
    return tuning_job_pb2.Progress(
        completed_steps=p.completed_steps,
        total_steps=p.total_steps,
        completed_percent=p.completed_percent,
    )


def waiting_reason(job: Job) -> str:
    """Why a QUEUED job has not started, for `waiting_reason`: empty, or the Vertex AI
    projects whose quota of concurrent tuning jobs it waits for (worker.steps)."""
    if job.state != JobState.QUEUED or not job.waiting_for:
        return ""
    projects = ", ".join(job.waiting_for)
    if len(job.waiting_for) == 1:
        return (
            f"WAITING_FOR_QUOTA: Vertex AI project {projects} runs as many tuning jobs at "
            "once as its quota allows"
        )
    return (
        f"WAITING_FOR_QUOTA: Vertex AI projects {projects} run as many tuning jobs at once "
        "as their quotas allow"
    )


def hyperparameters_to_proto(h: Hyperparameters) -> tuning_job_pb2.Hyperparameters:
    message = tuning_job_pb2.Hyperparameters()
    set_common_hyperparameters(message, h)
    if h.adapter_size is not None:
        message.adapter_size = h.adapter_size
    return message


def set_common_hyperparameters(message: Any, h: Hyperparameters) -> None:
    """Set on `message` the hyperparameters every surface names alike (tuning.v1's and
    the Gemini API's `Hyperparameters`): 0 or None is the upstream's default, left unset."""
    if h.epoch_count:
        message.epoch_count = h.epoch_count
    if h.batch_size:
        message.batch_size = h.batch_size
    if h.learning_rate is not None:
        message.learning_rate = h.learning_rate
    elif h.learning_rate_multiplier is not None:
        message.learning_rate_multiplier = h.learning_rate_multiplier


def _set_model_outputs(message: tuning_job_pb2.TuningJob, job: Job) -> None:
    """What the upstream reported of the data and the model (Vertex AI): data statistics,
    checkpoints, the serving endpoint. Filled in by the worker; empty until then."""
    if job.tuned_model_endpoint:
        message.tuned_model_endpoint = job.tuned_model_endpoint
    for c in job.checkpoints:
        message.checkpoints.add(
            checkpoint_id=c.checkpoint_id, epoch=c.epoch, step=c.step, endpoint=c.endpoint
        )
    if job.data_stats is not None:
        message.tuning_data_stats.CopyFrom(_data_stats_to_proto(job.data_stats))


def _set_advice(message: tuning_job_pb2.TuningJob, job: Job) -> None:
    """The loss curve's advice (core.domain.loss_curve), once two epochs have ended."""
    found = job_advice(
        job.snapshots, job.progress.total_steps, job.hyperparameters.epoch_count, job.checkpoints
    )
    if found is None:
        return
    advice = message.training_advice
    advice.recommended_epoch_count = found.recommended_epoch_count
    advice.basis = tuning_job_pb2.TrainingAdvice.Basis.Value(found.basis.value)
    advice.epoch_mean_losses.extend(found.epoch_mean_losses)
    advice.plateau_threshold = found.threshold
    if found.checkpoint_id:
        advice.checkpoint = f"{job.name}/checkpoints/{found.checkpoint_id}"


def _data_stats_to_proto(stats: DataStats) -> tuning_job_pb2.TuningDataStats:
    return tuning_job_pb2.TuningDataStats(
        example_count=stats.example_count,
        total_characters=stats.total_characters,
        billable_tokens=stats.billable_tokens,
        step_count=stats.step_count,
    )


def dataset_to_proto(record: DatasetRecord) -> dataset_pb2.Dataset:
    s = record.stats
    message = dataset_pb2.Dataset(
        name=record.name,
        display_name=record.display_name,
        format=dataset_pb2.Dataset.Format.Value(record.format.value),
        input_field=record.input_field,
        output_field=record.output_field,
        stats=dataset_pb2.DatasetStats(
            example_count=s.examples,
            input_chars=s.input_chars,
            output_chars=s.output_chars,
            longest_input_chars=s.max_input_chars,
            longest_output_chars=s.max_output_chars,
            duplicate_count=s.duplicates,
            size_bytes=s.bytes,
        ),
        warnings=[
            dataset_pb2.DatasetWarning(location=w.location, field=w.field, message=w.message)
            for w in record.warnings
        ],
    )
    _set_time(message.create_time, record.create_time)
    return message


def snapshot_rows(job: Job) -> Iterator[tuple[int, int, float, float | None]]:
    """(step, epoch, mean loss, compute time) of each of the job's snapshots, from their
    columns (core.domain.snapshots)."""
    c = Snapshots.of(job.snapshots)
    return zip(c.steps, c.epochs, c.mean_losses, c.compute_times, strict=True)


def _set_time(field: timestamp_pb2.Timestamp, seconds: float | None) -> None:
    if seconds is not None:
        field.FromNanoseconds(int(seconds * 1e9))
