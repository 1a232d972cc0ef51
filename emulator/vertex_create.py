"""Building a new tuning job's record: its dataset statistics, run plan, model and endpoints.

The training file is read here, once, at the create (``emulator.vertex_dataset``). A missing or
unusable file does not refuse the create: the job is created PENDING and ends FAILED (code 3)
when PENDING is over, as the real service validates the dataset after accepting the job.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.config import EmulatorConfig
from emulator.storage_objects import ObjectStore
from emulator.training import Stop, TrainingPlan
from emulator.vertex_dataset import DatasetError, DatasetStats, count_examples, read_stats
from emulator.vertex_spec import TuningJobSpec
from emulator.vertex_store import Checkpoint, TuningJobRecord, VertexStore
from emulator.vertex_training import JobPlan

MAX_VALIDATION_EXAMPLES = 5000


@dataclass(frozen=True)
class Placement:
    """Where a job is created, by whom, and through which API version."""

    project: str
    project_number: int
    location: str
    owner: str
    api_version: str


@dataclass(frozen=True)
class Forced:
    """What a ``training`` fault rule imposes on the job (``emulator.faults``)."""

    stop: Stop | None = None
    endpoint_failure: bool = False


def new_record(
    store: VertexStore,
    objects: ObjectStore,
    config: EmulatorConfig,
    *,
    spec: TuningJobSpec,
    where: Placement,
    now_s: float,
    forced: Forced,
) -> TuningJobRecord:
    """The record of a job created at ``now_s`` (not yet added to ``store``)."""
    stats, failure = _dataset(objects, spec)
    steps_per_epoch = _steps_per_epoch(stats, spec)
    job_id = store.fresh_id()
    plan = _plan(config, spec, job_id, stats, now_s=now_s, failure=failure, forced=forced)
    checkpoints = _checkpoints(store, spec, steps_per_epoch)
    return TuningJobRecord(
        job_id=job_id,
        project=where.project,
        project_number=where.project_number,
        location=where.location,
        owner=where.owner,
        seq=store.next_seq(),
        api_version=where.api_version,
        spec=spec,
        plan=plan,
        stats=_stats_json(stats, steps_per_epoch * spec.hyper.epoch_count),
        model_id=store.fresh_id(),
        checkpoints=checkpoints,
        deployed_model_ids={c.endpoint_id: store.fresh_id() for c in checkpoints},
    )


def _dataset(objects: ObjectStore, spec: TuningJobSpec) -> tuple[DatasetStats | None, str]:
    """The training set's statistics, or why the job will fail."""
    try:
        stats = read_stats(objects, spec.training_uri, spec.base_model.max_example_tokens)
        if spec.validation_uri:
            _check_validation(objects, spec.validation_uri)
    except DatasetError as exc:
        return None, str(exc)
    return stats, ""


def _check_validation(objects: ObjectStore, uri: str) -> None:
    if count_examples(objects, uri) > MAX_VALIDATION_EXAMPLES:
        raise DatasetError(f"The validation dataset {uri} has over {MAX_VALIDATION_EXAMPLES} rows.")


def _steps_per_epoch(stats: DatasetStats | None, spec: TuningJobSpec) -> int:
    """``ceil(examples / batch size)``; 1 for an unusable dataset (it never trains)."""
    if stats is None:
        return 1
    return -(-stats.example_count // spec.hyper.effective_batch_size)


def _plan(
    config: EmulatorConfig,
    spec: TuningJobSpec,
    job_id: str,
    stats: DatasetStats | None,
    *,
    now_s: float,
    failure: str,
    forced: Forced,
) -> JobPlan:
    run_start_s = now_s + config.vertex_pending_s
    training = None
    stop = None
    if stats is not None:
        batch = spec.hyper.effective_batch_size
        total = spec.hyper.epoch_count * _steps_per_epoch(stats, spec)
        stop = forced.stop.clamped(total) if forced.stop else None
        training = TrainingPlan(
            job_id, run_start_s, total, stats.example_count, batch, config.steps_per_second, stop
        )
    message = f"Tuning failed: emulated training failure at step {stop.step}." if stop else ""
    return JobPlan(
        create_s=now_s,
        run_start_s=run_start_s,
        training=training,
        dataset_failure=failure,
        failure_message=message,
        endpoint_failure=forced.endpoint_failure,
        cancelling_s=config.vertex_cancelling_s,
    )


def _checkpoints(
    store: VertexStore, spec: TuningJobSpec, steps_per_epoch: int
) -> tuple[Checkpoint, ...]:
    """One checkpoint per epoch, each with its own endpoint; only the last if so asked."""
    epochs = spec.hyper.epoch_count
    first = epochs if spec.export_last_checkpoint_only else 1
    return tuple(
        Checkpoint(str(epoch), epoch, epoch * steps_per_epoch, store.fresh_id())
        for epoch in range(first, epochs + 1)
    )


def _stats_json(stats: DatasetStats | None, total_steps: int) -> dict[str, object]:
    """``supervisedTuningDataStats`` in proto3 JSON (int64 as strings, zeros omitted)."""
    if stats is None:
        return {}
    body: dict[str, object] = {
        "tuningDatasetExampleCount": str(stats.example_count),
        "totalTuningCharacterCount": str(stats.character_count),
        "totalBillableCharacterCount": str(stats.character_count),
        "totalBillableTokenCount": str(stats.billable_token_count),
        "tuningStepCount": str(total_steps),
    }
    if stats.dropped_indices:
        body["totalTruncatedExampleCount"] = str(len(stats.dropped_indices))
        body["truncatedExampleIndices"] = [str(index) for index in stats.dropped_indices[:100]]
        body["droppedExampleReasons"] = list(stats.dropped_reasons)
    return body
