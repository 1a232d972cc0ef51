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
  learning_rate_multiplier in (0, 10]; NaN and infinities are refused; adapter_size one
  of 1, 2, 4, 8, 16;
- system_instruction: at most 10,000 characters; validation_dataset: a dataset of at most
  5,000 examples (its existence is checked in service.jobs_api, as `dataset`'s);
- prompt_template: at most 2,000 characters holding `{input}` exactly once
  (core.domain.prompt_template).

A job is also held to its tenant's provider (core.domain.providers): base_model must be
one of that provider's models (`TUNING_BASE_MODELS`, `TUNING_VERTEX_BASE_MODELS`), not
retired (`TUNING_BASE_MODEL_RETIREMENTS`, `check_not_retired`), and a
field the provider does not accept is refused naming the provider, in place of any
violation of that field's bounds.

No text holds a control character (Unicode category C: Cc, Cf, Cs, Co, Cn; NUL among
them), except newline and tab in a description or a system instruction, which are free
multi-line text.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence

from core.domain import prompt_template
from core.domain.catalogue import Catalogue
from core.domain.providers import JobOption, ProviderChoice, ProviderKind
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
MAX_SYSTEM_INSTRUCTION_CHARS = 10_000
DESCRIPTION_CONTROLS = frozenset("\n\t")
"""The only control characters a description or a system instruction may hold: they are
free, multi-line text."""
MAX_EPOCHS = 1_000
MAX_BATCH_SIZE = 1_024
MAX_LEARNING_RATE = 1.0
MAX_LEARNING_RATE_MULTIPLIER = 10.0
MAX_RATES = {
    "learning_rate": MAX_LEARNING_RATE,
    "learning_rate_multiplier": MAX_LEARNING_RATE_MULTIPLIER,
}
ADAPTER_SIZES = (1, 2, 4, 8, 16)
MAX_VALIDATION_EXAMPLES = 5_000
"""Examples a validation dataset may hold (Vertex AI's limit)."""

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


def validate_create(parsed: ParsedCreate, settings: Settings, provider: ProviderChoice) -> None:
    """Raise InvalidArgument listing every violation in the request, or return.

    `provider` is the tenant's (a value, not the tenants file: this may run in a child
    process)."""
    request = parsed.request
    violations = list(_request_id(request.request_id))
    if not request.HasField("tuning_job"):
        violations.append(FieldViolation("tuning_job", "required"))
    else:
        violations += _job_violations(parsed, settings, provider.kind)
    if violations:
        raise InvalidArgument(_summary(violations), violations[: settings.max_reported_violations])


def _job_violations(
    parsed: ParsedCreate, settings: Settings, kind: ProviderKind
) -> list[FieldViolation]:
    job = parsed.request.tuning_job
    refused = list(_refused_by(kind, job))
    bounds = [
        *_job_fields(job, settings, kind),
        *_hyperparameters(job.hyperparameters, parsed.both_learning_rates),
        *_system_instruction(job.system_instruction),
        *_prompt_template(job.prompt_template),
    ]
    skipped = {v.field for v in refused}  # a field its provider refuses needs no bounds
    return [
        *refused,
        *(v for v in bounds if v.field not in skipped),
        *_source(job, parsed.examples, settings),
        *_labels(job.labels),
    ]


def tunable_models(settings: Settings, kind: ProviderKind) -> tuple[str, ...]:
    """The base models a tenant on provider `kind` may tune (configuration)."""
    return settings.vertex_base_models if kind is ProviderKind.VERTEX else settings.base_models


def _refused_by(kind: ProviderKind, job: tuning_job_pb2.TuningJob) -> Violations:
    """A violation for each option the job sets that its provider cannot do."""
    for option in _options_set(job):
        refusal = kind.refusal(option)
        if refusal is not None:
            yield FieldViolation(f"tuning_job.{option.value}", refusal)


def _options_set(job: tuning_job_pb2.TuningJob) -> Iterator[JobOption]:
    hyper = job.hyperparameters
    asked = {
        JobOption.EPOCH_COUNT: hyper.HasField("epoch_count"),
        JobOption.BATCH_SIZE: hyper.HasField("batch_size"),
        JobOption.LEARNING_RATE: hyper.HasField("learning_rate"),
        JobOption.LEARNING_RATE_MULTIPLIER: hyper.HasField("learning_rate_multiplier"),
        JobOption.ADAPTER_SIZE: hyper.HasField("adapter_size"),
        JobOption.SYSTEM_INSTRUCTION: bool(job.system_instruction),
        JobOption.VALIDATION_DATASET: bool(job.validation_dataset),
        JobOption.EXPORT_LAST_CHECKPOINT_ONLY: job.export_last_checkpoint_only,
    }
    return (option for option, is_set in asked.items() if is_set)


def _summary(violations: list[FieldViolation]) -> str:
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return f"invalid tuning job: {first.field}: {first.description}{more}"


def _request_id(request_id: str) -> Violations:
    if request_id and not REQUEST_ID.fullmatch(request_id):
        yield FieldViolation(
            "request_id", "at most 128 letters, digits or . _ : - (a UUID is ideal)"
        )


def check_not_retired(base_model: str, catalogue: Catalogue, now_s: float) -> None:
    """Refuse a job on a base model already retired (core.domain.catalogue): Google no
    longer tunes it, nor serves what was tuned on it. Checked apart from
    `validate_create`, which may run in a child process and has no clock."""
    day = catalogue.retired_on(base_model, now_s)
    if day is not None:
        why = f"retired on {day}; choose a base model that is not retired"
        raise InvalidArgument(
            f"invalid tuning job: tuning_job.base_model: {why}",
            [FieldViolation("tuning_job.base_model", why)],
        )


def _job_fields(
    job: tuning_job_pb2.TuningJob, settings: Settings, kind: ProviderKind
) -> Violations:
    models = tunable_models(settings, kind)
    if not job.base_model:
        yield FieldViolation("tuning_job.base_model", "required")
    elif job.base_model not in models:
        yield FieldViolation(
            "tuning_job.base_model",
            f"not tunable on the {kind.value} provider; use one of: {', '.join(models)}",
        )
    yield from _texts("tuning_job.", job.display_name, job.description)


def check_texts(display_name: str | None, description: str | None, path: str = "") -> None:
    """InvalidArgument unless a display name and a description (None: not changed) keep
    a job's bounds; violations name `{path}display_name` and `{path}description`."""
    violations = list(_texts(path, display_name or "", description or ""))
    if violations:
        raise InvalidArgument(_summary(violations), violations)


def _texts(path: str, display_name: str, description: str) -> Violations:
    if len(display_name) > MAX_DISPLAY_NAME_CHARS:
        yield FieldViolation(f"{path}display_name", f"at most {MAX_DISPLAY_NAME_CHARS} characters")
    elif has_controls(display_name):
        yield FieldViolation(f"{path}display_name", "must not hold control characters")
    if len(description) > MAX_DESCRIPTION_CHARS:
        yield FieldViolation(f"{path}description", f"at most {MAX_DESCRIPTION_CHARS} characters")
    elif has_controls(description, DESCRIPTION_CONTROLS):
        yield FieldViolation(f"{path}description", "no control characters but newline and tab")


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
    if hyper.HasField("adapter_size") and hyper.adapter_size not in ADAPTER_SIZES:
        sizes = ", ".join(map(str, ADAPTER_SIZES))
        yield FieldViolation(f"{path}.adapter_size", f"must be one of {sizes}")


def _system_instruction(text: str) -> Violations:
    path = "tuning_job.system_instruction"
    if len(text) > MAX_SYSTEM_INSTRUCTION_CHARS:
        yield FieldViolation(path, f"at most {MAX_SYSTEM_INSTRUCTION_CHARS} characters")
    elif has_controls(text, DESCRIPTION_CONTROLS):
        yield FieldViolation(path, "no control characters but newline and tab")


def _prompt_template(template: str) -> Violations:
    why = prompt_template.violation(template) if template else None
    if why is not None:
        yield FieldViolation("tuning_job.prompt_template", why)


def _source(
    job: tuning_job_pb2.TuningJob, examples: Sequence[tuple[str, str]], settings: Settings
) -> Violations:
    """Exactly one of inline examples and a dataset reference."""
    if job.dataset and examples:
        yield FieldViolation("tuning_job.dataset", "set either dataset or training_examples")
    elif not job.dataset:
        yield from _examples(examples, settings)


def _examples(examples: Sequence[tuple[str, str]], settings: Settings) -> Violations:
    path = "tuning_job.training_examples"
    if not settings.min_examples <= len(examples) <= settings.max_examples:
        yield FieldViolation(
            path,
            f"has {len(examples)} examples; from {settings.min_examples} "
            f"to {settings.max_examples} are accepted",
        )
    max_input, max_output = settings.max_input_chars, settings.max_output_chars
    for row, (given, wanted) in enumerate(examples):
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
