"""Checks on a CreateTuningJobRequest: every problem found, each naming its field path.

A request with any violation is refused whole with INVALID_ARGUMENT and BadRequest
details, before anything is stored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence

from core.errors import FieldViolation, InvalidArgument, echo
from core.runtime.settings import Settings
from service.request_parsing import ParsedCreate
from tuning.v1 import tuning_job_pb2

REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
MAX_DISPLAY_NAME_CHARS = 40
MAX_DESCRIPTION_CHARS = 10_000
MAX_EPOCHS = 1_000
MAX_BATCH_SIZE = 1_024

Violations = Iterator[FieldViolation]


def validate_create(parsed: ParsedCreate, settings: Settings) -> None:
    """Raise InvalidArgument listing every violation in the request, or return."""
    request = parsed.request
    violations = list(_request_id(request.request_id))
    if not request.HasField("tuning_job"):
        violations.append(FieldViolation("tuning_job", "required"))
    else:
        job = request.tuning_job
        violations += _job_fields(job, settings)
        violations += _hyperparameters(job.hyperparameters, parsed.both_learning_rates)
        violations += _source(job, settings)
        violations += _labels(job.labels)
    if violations:
        raise InvalidArgument(_summary(violations), violations[: settings.max_reported_violations])


def _summary(violations: list[FieldViolation]) -> str:
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return f"invalid tuning job: {first.field}: {first.description}{more}"


def _request_id(request_id: str) -> Violations:
    if request_id and not REQUEST_ID.fullmatch(request_id):
        yield FieldViolation(
            "request_id", "at most 128 letters, digits or . _ : - (a UUID is ideal)"
        )


def _job_fields(job: tuning_job_pb2.TuningJob, settings: Settings) -> Violations:
    if not job.base_model:
        yield FieldViolation("tuning_job.base_model", "required")
    elif job.base_model not in settings.base_models:
        allowed = ", ".join(settings.base_models)
        yield FieldViolation("tuning_job.base_model", f"not tunable; use one of: {allowed}")
    if len(job.display_name) > MAX_DISPLAY_NAME_CHARS:
        yield FieldViolation(
            "tuning_job.display_name", f"at most {MAX_DISPLAY_NAME_CHARS} characters"
        )
    if len(job.description) > MAX_DESCRIPTION_CHARS:
        yield FieldViolation(
            "tuning_job.description", f"at most {MAX_DESCRIPTION_CHARS} characters"
        )


def _hyperparameters(hyper: tuning_job_pb2.Hyperparameters, both_rates: bool) -> Violations:
    path = "tuning_job.hyperparameters"
    if hyper.HasField("epoch_count") and not 1 <= hyper.epoch_count <= MAX_EPOCHS:
        yield FieldViolation(f"{path}.epoch_count", f"must be from 1 to {MAX_EPOCHS}")
    if hyper.HasField("batch_size") and not 1 <= hyper.batch_size <= MAX_BATCH_SIZE:
        yield FieldViolation(f"{path}.batch_size", f"must be from 1 to {MAX_BATCH_SIZE}")
    if both_rates:
        yield FieldViolation(
            f"{path}.learning_rate_multiplier",
            "set at most one of learning_rate and learning_rate_multiplier",
        )
    chosen = hyper.WhichOneof("learning_rate_option")
    if chosen is not None:
        value = getattr(hyper, chosen)
        if not (math.isfinite(value) and value > 0):
            yield FieldViolation(f"{path}.{chosen}", "must be a positive number")


def _source(job: tuning_job_pb2.TuningJob, settings: Settings) -> Violations:
    """Exactly one of inline examples and a dataset reference."""
    if job.dataset and job.training_examples:
        yield FieldViolation("tuning_job.dataset", "set either dataset or training_examples")
    elif not job.dataset:
        yield from _examples(job.training_examples, settings)


def _examples(examples: Sequence[tuning_job_pb2.TrainingExample], settings: Settings) -> Violations:
    path = "tuning_job.training_examples"
    if not settings.min_examples <= len(examples) <= settings.max_examples:
        yield FieldViolation(
            path,
            f"has {len(examples)} examples; from {settings.min_examples} "
            f"to {settings.max_examples} are accepted",
        )
    max_input, max_output = settings.max_input_chars, settings.max_output_chars
    for row, example in enumerate(examples):
        given, wanted = example.text_input, example.output
        if (
            given.strip()
            and len(given) <= max_input
            and wanted.strip()
            and len(wanted) <= max_output
        ):
            continue  # the common case, without building the paths
        yield from _text(f"{path}[{row}].text_input", given, max_input)
        yield from _text(f"{path}[{row}].output", wanted, max_output)


def _text(path: str, value: str, max_chars: int) -> Violations:
    if not value.strip():
        yield FieldViolation(path, "required (empty)")
    elif len(value) > max_chars:
        yield FieldViolation(path, f"{len(value)} characters; at most {max_chars}")


def _labels(labels: Mapping[str, str]) -> Violations:
    for key, value in sorted(labels.items()):
        if not LABEL_KEY.fullmatch(key):
            yield FieldViolation(
                f"tuning_job.labels[{echo(key)}]",
                "key: lowercase letter, then [a-z0-9_-], at most 63",
            )
        if not LABEL_VALUE.fullmatch(value):
            yield FieldViolation(
                f"tuning_job.labels[{echo(key)}]", "value: [a-z0-9_-], at most 63 characters"
            )
