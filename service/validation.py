"""Checks on what callers send: resource names, and a CreateTuningJobRequest whole.

A request with any violation is refused whole with INVALID_ARGUMENT and BadRequest
details naming each field, before anything is looked up or stored. Every bound is a
constant here, and documented for callers in protos/tuning/v1/tuning_job.proto:

- names (`tuningJobs/{id}`, `datasets/{id}`): exactly the shape ids are made in
  (core.domain.job.id_shape), at most MAX_NAME_CHARS;
- request_id: 1-128 of [A-Za-z0-9._:-], the first a letter or digit;
- display_name: at most 40 characters; description: at most 10,000;
- labels: at most 64 (as Google Cloud); keys 1-63 of [a-z0-9_-] starting with a
  lowercase letter, values 0-63 of [a-z0-9_-];
- epoch_count 1 to 1,000; batch_size 1 to 1,024; learning_rate in (0, 1];
  learning_rate_multiplier in (0, 10]; NaN and infinities are refused.

No text holds a control character (Unicode category C: Cc, Cf, Cs, Co, Cn; NUL among
them), except newline and tab in a description, which is free multi-line text.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence

from core.errors import FieldViolation, InvalidArgument, echo
from core.runtime.settings import Settings
from service.request_parsing import ParsedCreate
from tuning.v1 import tuning_job_pb2

MAX_NAME_CHARS = 64
"""Longer names are refused before their shape is even looked at (ids are 20 chars)."""
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_LABELS = 64
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
MAX_DISPLAY_NAME_CHARS = 40
MAX_DESCRIPTION_CHARS = 10_000
DESCRIPTION_CONTROLS = frozenset("\n\t")
"""The only control characters a description may hold: it is free, multi-line text."""
MAX_EPOCHS = 1_000
MAX_BATCH_SIZE = 1_024
MAX_LEARNING_RATE = 1.0
MAX_LEARNING_RATE_MULTIPLIER = 10.0
MAX_RATES = {
    "learning_rate": MAX_LEARNING_RATE,
    "learning_rate_multiplier": MAX_LEARNING_RATE_MULTIPLIER,
}

Violations = Iterator[FieldViolation]


def resource_id(name: str, *, prefix: str, shape: re.Pattern[str], field: str) -> str:
    """The id in `{prefix}{id}`, if it has `shape`; else InvalidArgument naming `field`.

    Checked before any lookup: a name that cannot exist is the caller's mistake, and
    is never read from Redis nor kept in a cache. The length is checked first, so a
    megabyte name costs nothing more than a short one.
    """
    found = name[len(prefix) :] if len(name) <= MAX_NAME_CHARS else ""
    if not name.startswith(prefix) or shape.fullmatch(found) is None:
        raise InvalidArgument(
            f"invalid {field} {echo(name)}",
            [FieldViolation(field, f"must be {prefix}{{id}}, a name this service gave")],
        )
    return found


def has_controls(text: str, allowed: frozenset[str] = frozenset()) -> bool:
    """Whether `text` holds a character of Unicode category C not in `allowed`."""
    if text.isprintable():  # no category C character is printable: the common case
        return False
    return any(unicodedata.category(c)[0] == "C" and c not in allowed for c in text)


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
    elif has_controls(job.display_name):
        yield FieldViolation("tuning_job.display_name", "must not hold control characters")
    if len(job.description) > MAX_DESCRIPTION_CHARS:
        yield FieldViolation(
            "tuning_job.description", f"at most {MAX_DESCRIPTION_CHARS} characters"
        )
    elif has_controls(job.description, DESCRIPTION_CONTROLS):
        yield FieldViolation("tuning_job.description", "no control characters but newline and tab")


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
        value, most = getattr(hyper, chosen), MAX_RATES[chosen]
        if not (math.isfinite(value) and 0 < value <= most):
            yield FieldViolation(f"{path}.{chosen}", f"must be above 0 and at most {most:g}")


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
    if len(labels) > MAX_LABELS:  # before looking at any: there may be a million
        yield FieldViolation("tuning_job.labels", f"{len(labels)} labels; at most {MAX_LABELS}")
        return
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
