"""What a caller asks for when creating a tuned model, after validation."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_EPOCH_COUNT = 5
DEFAULT_BATCH_SIZE = 4
DEFAULT_LEARNING_RATE = 0.001


@dataclass(frozen=True)
class ModelFields:
    """The mutable fields of a tuned model, with the base model's defaults.

    The defaults are those ``models/gemini-1.5-flash-001-tuning`` reported.
    """

    display_name: str = ""
    description: str = ""
    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 64


@dataclass(frozen=True)
class Hyperparameters:
    """Tuning hyperparameters with defaults filled; exactly one learning-rate field is set."""

    epoch_count: int = DEFAULT_EPOCH_COUNT
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float | None = DEFAULT_LEARNING_RATE
    learning_rate_multiplier: float | None = None


@dataclass(frozen=True)
class CreateSpec:
    """A validated create request.

    Attributes:
        model_id: the caller's ``tunedModelId``, or ``None`` to generate one.
        base_model: e.g. ``models/gemini-1.5-flash-001-tuning``.
        fields: display name, description and sampling defaults.
        hyperparameters: with defaults filled.
        example_count: number of training examples (the examples themselves are not kept).
        reader_project_numbers: int64 project numbers (rendered as JSON strings).
    """

    model_id: str | None
    base_model: str
    fields: ModelFields
    hyperparameters: Hyperparameters
    example_count: int
    reader_project_numbers: tuple[int, ...] = ()

    @property
    def fails(self) -> bool:
        """Emulator-only: a display name ending in ``[fail]`` makes training fail at half."""
        return self.fields.display_name.endswith("[fail]")
