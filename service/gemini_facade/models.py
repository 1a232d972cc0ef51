"""A job as the Gemini API answers it: a TunedModel, and its create's Operation.

Decisions, each written once here:

- State: QUEUED, CREATING, RUNNING and CANCELLING are CREATING (the model does not exist
  yet; a cancel is not confirmed until the upstream says so); SUCCEEDED is ACTIVE;
  FAILED and CANCELLED are FAILED.
- The operation (`names.operation_name`) is done when the job has ended: a SUCCEEDED
  job's `response` is its TunedModel; a FAILED or CANCELLED one's `error` is the job's
  error as a google.rpc.Status (core.errors.to_status: the same reason and details a
  GetTuningJob shows). Its metadata is a CreateTunedModelMetadata: the progress and
  snapshots the worker last fetched (`total_steps` estimated until the upstream counts).
- `base_model` is `models/{id}` as Google names models: a Vertex AI tenant's job keeps a
  bare id (`gemini-2.5-flash`), answered as `models/gemini-2.5-flash`.
- `tuning_task`: start time, complete time (the job's end), snapshots and the
  hyperparameters set (an unset one is the upstream's default, and left unset). The
  training examples are never answered back, as Google does not.
- `temperature`, `top_p` and `top_k` are the default sampling the create gave (kept with
  the job, `Job.sampling`), unset where it gave none. `reader_project_numbers`, which
  the platform does not keep, is left unset.
"""

from __future__ import annotations

from typing import Any

from google.ai import generativelanguage_v1beta as glm
from google.longrunning import operations_pb2
from google.protobuf import timestamp_pb2

from core.domain.job import Hyperparameters, Job
from core.domain.states import JobState
from core.errors import to_status
from service.convert import set_common_hyperparameters, snapshot_rows
from service.gemini_facade.names import operation_name, tuned_model_name
from service.jobs_api import estimated_total_steps

TunedModel: Any = glm.TunedModel.pb()
TuningTask: Any = glm.TuningTask.pb()
TuningSnapshot: Any = glm.TuningSnapshot.pb()
GlmHyperparameters: Any = glm.Hyperparameters.pb()
CreateTunedModelMetadata: Any = glm.CreateTunedModelMetadata.pb()
State = glm.TunedModel.State
MODEL_PREFIX = "models/"

STATES = {
    JobState.QUEUED: State.CREATING,
    JobState.CREATING: State.CREATING,
    JobState.RUNNING: State.CREATING,
    JobState.CANCELLING: State.CREATING,
    JobState.SUCCEEDED: State.ACTIVE,
    JobState.FAILED: State.FAILED,
    JobState.CANCELLED: State.FAILED,
}
"""Each job state as a TunedModel's state."""


def model_name_of(base_model: str) -> str:
    """`models/{id}` of a base model, as the job keeps it (with or without the prefix)."""
    return base_model if base_model.startswith(MODEL_PREFIX) else MODEL_PREFIX + base_model


def tuned_model(job: Job) -> Any:
    """The job as a TunedModel (raw protobuf)."""
    message = TunedModel(
        name=tuned_model_name(job),
        base_model=model_name_of(job.base_model),
        state=int(STATES[job.state]),
        tuning_task=_tuning_task(job),
    )
    if job.display_name:
        message.display_name = job.display_name
    if job.description:
        message.description = job.description
    for field, value in (job.sampling.given() if job.sampling else {}).items():
        setattr(message, field, value)
    _set_time(message.create_time, job.create_time)
    _set_time(message.update_time, job.update_time)
    return message


def _tuning_task(job: Job) -> Any:
    task = TuningTask(
        hyperparameters=hyperparameters(job.hyperparameters), snapshots=snapshots(job)
    )
    _set_time(task.start_time, job.start_time)
    if job.state.terminal:
        _set_time(task.complete_time, job.end_time)
    return task


def hyperparameters(h: Hyperparameters) -> Any:
    """The hyperparameters the job was given (0 or None: the upstream's default, unset)."""
    message = GlmHyperparameters()
    set_common_hyperparameters(message, h)
    return message


def snapshots(job: Job) -> list[Any]:
    """The loss after each step, as the worker last fetched it."""
    answered = []
    for step, epoch, loss, at in snapshot_rows(job):
        snapshot = TuningSnapshot(step=step, epoch=epoch, mean_loss=loss)
        _set_time(snapshot.compute_time, at)
        answered.append(snapshot)
    return answered


def operation(job: Job) -> operations_pb2.Operation:
    """The job's create operation: its progress as metadata; once the job has ended,
    done, with the TunedModel or the job's error."""
    answer = operations_pb2.Operation(name=operation_name(job))
    answer.metadata.Pack(metadata(job))
    if job.state == JobState.SUCCEEDED:
        answer.done = True
        answer.response.Pack(tuned_model(job))
    elif job.state.terminal:
        answer.done = True
        if job.error is not None:
            answer.error.CopyFrom(to_status(job.error))
        else:  # a job ends FAILED or CANCELLED with an error; never leave one without
            answer.error.code = 2  # google.rpc.Code.UNKNOWN
            answer.error.message = f"the job ended {job.state.value}"
    return answer


def metadata(job: Job) -> Any:
    """CreateTunedModelMetadata: the progress of the job's training; until the upstream
    has counted the steps, `total_steps` is the estimate a validate_only create answers
    (service.jobs_api.estimated_total_steps), so a progress bar has its end from the
    start."""
    p = job.progress
    return CreateTunedModelMetadata(
        tuned_model=tuned_model_name(job),
        total_steps=p.total_steps or estimated_total_steps(job),
        completed_steps=p.completed_steps,
        completed_percent=p.completed_percent,
        snapshots=snapshots(job),
    )


def _set_time(field: timestamp_pb2.Timestamp, seconds: float | None) -> None:
    if seconds:
        field.FromNanoseconds(round(seconds * 1e9))
