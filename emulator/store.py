"""In-memory tuned models and their create operations.

Each tuned model has exactly one long-running operation (its create), so the operation lives
on the model's record. Records keep a creation sequence number: lists are in creation order
and page tokens point at a sequence number, so deleting a model never shifts a page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from emulator import ids
from emulator.errors import model_already_exists
from emulator.snapshot_json import RenderedSnapshots
from emulator.spec import CreateSpec, Hyperparameters, ModelFields
from emulator.training import Progress, Stop, TrainingPlan, progress, total_steps

MARKER_FAILURE_MESSAGE = "Tuning failed: emulated training failure."


@dataclass
class ModelRecord:
    """One tuned model as the emulator keeps it (training data is not kept).

    Attributes:
        model_id: the id part of ``tunedModels/{id}``.
        operation_id: the id part of its create operation's name.
        owner: the OAuth client id that created it.
        seq: creation sequence number, for stable ordering.
        base_model: the immutable base model name.
        fields: the mutable fields.
        hyperparameters: with defaults filled.
        reader_project_numbers: as given at creation.
        plan: the simulated training run.
        create_s: creation time, epoch seconds.
        update_s: time of the last PATCH (or creation).
        failure_message: the operation's error message should training fail.
        cancel_s: time the operation was cancelled, if it was.
        rendered: its snapshots' JSON, each step rendered once (emulator.snapshot_json).
    """

    model_id: str
    operation_id: str
    owner: str
    seq: int
    base_model: str
    fields: ModelFields
    hyperparameters: Hyperparameters
    reader_project_numbers: tuple[int, ...]
    plan: TrainingPlan
    create_s: float
    update_s: float
    failure_message: str = MARKER_FAILURE_MESSAGE
    cancel_s: float | None = None
    rendered: RenderedSnapshots = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rendered = RenderedSnapshots(self.plan)  # the plan never changes

    @property
    def name(self) -> str:
        """``tunedModels/{id}``."""
        return f"tunedModels/{self.model_id}"

    @property
    def operation_name(self) -> str:
        """``tunedModels/{id}/operations/{op}``."""
        return f"{self.name}/operations/{self.operation_id}"

    def progress(self, now_s: float) -> Progress:
        """The training run as seen at ``now_s``."""
        return progress(self.plan, now_s, self.cancel_s)


class ModelStore:
    """The live tuned models, keyed by id, in creation order."""

    def __init__(self) -> None:
        self._models: dict[str, ModelRecord] = {}
        self._last_seq = 0
        self.creates = 0

    def create(
        self,
        spec: CreateSpec,
        owner: str,
        now_s: float,
        steps_per_second: float,
        forced_stop: Stop | None = None,
        *,
        head_start_steps: int = 0,
    ) -> ModelRecord:
        """Store a new model; 409 ALREADY_EXISTS if the id is taken.

        ``forced_stop`` (from a ``training`` fault rule) makes its training fail or stall at
        that step; it takes precedence over the ``[fail]`` display-name marker.
        ``head_start_steps``: its training began that many steps before ``now_s``.
        """
        model_id = spec.model_id or self._fresh_id(spec.fields.display_name)
        if model_id in self._models:
            raise model_already_exists(f"tunedModels/{model_id}")
        self._last_seq += 1
        record = _new_record(
            spec,
            model_id=model_id,
            owner=owner,
            seq=self._last_seq,
            now_s=now_s,
            steps_per_second=steps_per_second,
            forced_stop=forced_stop,
            head_start_s=head_start_steps / steps_per_second,
        )
        self._models[model_id] = record
        self.creates += 1
        return record

    def get(self, model_id: str) -> ModelRecord | None:
        """The model, or ``None`` if it does not exist."""
        return self._models.get(model_id)

    def delete(self, model_id: str) -> None:
        """Forget the model and its operation."""
        self._models.pop(model_id, None)

    def owned_by(self, owner: str) -> Iterator[ModelRecord]:
        """The owner's models in creation order."""
        return (record for record in self._models.values() if record.owner == owner)

    def __len__(self) -> int:
        return len(self._models)

    def _fresh_id(self, display_name: str) -> str:
        model_id = ids.generated_model_id(display_name)
        while model_id in self._models:
            model_id = ids.generated_model_id(display_name)
        return model_id


def _new_record(
    spec: CreateSpec,
    *,
    model_id: str,
    owner: str,
    seq: int,
    now_s: float,
    steps_per_second: float,
    forced_stop: Stop | None,
    head_start_s: float = 0.0,
) -> ModelRecord:
    hyper = spec.hyperparameters
    steps = total_steps(spec.example_count, hyper.epoch_count, hyper.batch_size)
    stop, failure_message = _stop_of(spec, steps, forced_stop)
    plan = TrainingPlan(
        seed=model_id,
        start_s=now_s - head_start_s,
        total_steps=steps,
        example_count=spec.example_count,
        batch_size=hyper.batch_size,
        steps_per_second=steps_per_second,
        stop=stop,
    )
    return ModelRecord(
        model_id=model_id,
        operation_id=ids.random_suffix(),
        owner=owner,
        seq=seq,
        base_model=spec.base_model,
        fields=spec.fields,
        hyperparameters=hyper,
        reader_project_numbers=spec.reader_project_numbers,
        plan=plan,
        create_s=now_s,
        update_s=now_s,
        failure_message=failure_message,
    )


def _stop_of(spec: CreateSpec, steps: int, forced: Stop | None) -> tuple[Stop | None, str]:
    """The run's forced stop, if any, and the error message of its failure.

    A fault rule's stop is clamped to ``[0, steps]`` and named in the message; otherwise the
    ``[fail]`` marker fails the run at half its steps, rounded up.
    """
    if forced is not None:
        stop = forced.clamped(steps)
        return stop, f"Tuning failed: emulated training failure at step {stop.step}."
    if spec.fails:
        return Stop((steps + 1) // 2, fails=True), MARKER_FAILURE_MESSAGE
    return None, MARKER_FAILURE_MESSAGE
