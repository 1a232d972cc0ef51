"""CreateTunedModel as the TuningService's CreateTuningJob, and its refusals in Google's words.

A facade create is translated into a tuning.v1 CreateTuningJobRequest and handed to
JobsApi.create as a CreateCall, so the same validation, quotas and tenancy judge it:

- `tuned_model_id` (Google's shape, `names.TUNED_MODEL_ID`) becomes request_id
  `tunedModels:{id}` (`names.request_id_for`), so the job's id is derived from it. An
  id of a job's shape (`j` and 19 of [a-z2-7]) is refused: `tunedModels/{that}` names
  that job. Without one, an id is made as Google makes them: the display name in
  lower case, runs of other characters as one dash, cut to 33 characters, then a dash
  and 6 random characters (`tuned-model-...` with no display name).
- `tuned_model.base_model` as service.gemini_facade.base_models reads it;
  `tuned_model_source` (tuning a tuned model) is refused.
- `tuning_task.hyperparameters` map field by field (epoch_count, batch_size,
  learning_rate or learning_rate_multiplier); `tuning_task.training_data.examples`
  become the training examples (`text_input`, `output`).
- The display name and description go as they are.
- `temperature`, `top_p` and `top_k`, the tuned model's default sampling, are kept with
  the job (`sampling_of`), held to the bounds of a GenerateContent's generation config
  (service.generation: temperature 0-2, top_p 0-1, top_k 1-1,000), which is wider than
  the [0, 1] Google's message documents for temperature, so that any default kept is a
  value Generate takes. Unset ones stay unset: the upstream model's own apply.

The translation is work per example: for a large request it runs in the API's checking
processes, as CreateTuningJob's parsing does (JobsApi.off_loop), after a peek at the
tenant's create quota (JobsApi.peek_create_quota), so the quota still comes first.

An InvalidArgument coming back names tuning.v1's fields; `google_paths` renames them
(`tuning_job.training_examples[3].output` is
`tuned_model.tuning_task.training_data.examples.examples[3].output`), in the
violations and the message alike.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any

from google.ai import generativelanguage_v1beta as glm

from core.domain.job import JOB_ID_SHAPE, Sampling
from core.errors import FieldViolation, InvalidArgument, echo
from service.create_preparation import CreateCall
from service.gemini_facade.names import TUNED_MODEL_ID, request_id_for
from service.generation import config_violations
from tuning.v1 import generation_service_pb2 as gen
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

CreateTunedModelRequest: Any = glm.CreateTunedModelRequest.pb()
SUFFIX_CHARS = 6
SLUG_MAX_CHARS = 33
"""A generated id's part from the display name: with a dash and the suffix, 40 at most."""
_SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_NOT_ID = re.compile(r"[^a-z0-9]+")
SAMPLING_FIELDS = tuple(f.name for f in dataclasses.fields(Sampling))
"""TunedModel's default sampling fields, named as `Sampling`'s and a GenerationConfig's."""

_PATHS = {
    "tuning_job.training_examples": "tuned_model.tuning_task.training_data.examples.examples",
    "tuning_job.hyperparameters": "tuned_model.tuning_task.hyperparameters",
    "tuning_job": "tuned_model",
    "request_id": "tuned_model_id",
    "invalid tuning job": "invalid tuned model",
}
_PATH = re.compile("|".join(re.escape(p) for p in _PATHS))  # longest first, as listed


def google_path(text: str) -> str:
    """`text` with tuning.v1's field paths as Google's request names them."""
    return _PATH.sub(lambda m: _PATHS[m[0]], text)


def google_paths(exc: InvalidArgument) -> InvalidArgument:
    """The same refusal, naming the facade request's fields."""
    violations = [FieldViolation(google_path(v.field), v.description) for v in exc.violations]
    return InvalidArgument(google_path(exc.message), violations, reason=exc.reason)


def tuned_model_id(request: Any) -> str:
    """The create's id, checked, or one made from its display name."""
    if not request.HasField("tuned_model_id"):
        return generated_id(request.tuned_model.display_name)
    given: str = request.tuned_model_id
    if not TUNED_MODEL_ID.fullmatch(given) or JOB_ID_SHAPE.fullmatch(given):
        raise InvalidArgument(
            f"{echo(given)} is not a tuned model id",
            [
                FieldViolation(
                    "tuned_model_id",
                    "1-40 lowercase letters, digits or dashes, the first a letter and the "
                    "last not a dash (and not `j` and 19 of [a-z2-7], a job's id)",
                )
            ],
        )
    return given


def generated_id(display_name: str) -> str:
    """An id as Google makes one: the display name's slug and a random suffix."""
    slug = _NOT_ID.sub("-", display_name.lower())[:SLUG_MAX_CHARS].strip("-")
    if not slug or not slug[0].isalpha():
        slug = ("tuned-model-" + slug).strip("-")[:SLUG_MAX_CHARS].strip("-")
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(SUFFIX_CHARS))
    return f"{slug}-{suffix}"


def check_source(request: Any) -> None:
    """INVALID_ARGUMENT for a create that tunes a tuned model (only base models tune)."""
    if request.tuned_model.HasField("tuned_model_source"):
        raise InvalidArgument(
            "tuning a tuned model is not offered",
            [FieldViolation("tuned_model.tuned_model_source", "not supported; set base_model")],
        )


def sampling_of(request: Any) -> Sampling | None:
    """The tuned model's default sampling the create gives, checked; None if it gives none."""
    given = request.tuned_model
    chosen = {f: getattr(given, f) for f in SAMPLING_FIELDS if given.HasField(f)}
    if not chosen:
        return None
    violations = list(config_violations(gen.GenerationConfig(**chosen), "tuned_model"))
    if violations:
        first = violations[0]
        raise InvalidArgument(f"invalid tuned model: {first.field} {first.description}", violations)
    return Sampling(**chosen)


def create_call(wire: bytes, model_id: str) -> CreateCall:
    """The CreateCall JobsApi.create takes, for `translated` bytes."""
    return CreateCall(wire, request_id_for(model_id), validate_only=False)


def translated(raw: bytes, model_id: str, base_model: str) -> bytes:
    """A serialized CreateTunedModelRequest as a serialized CreateTuningJobRequest (its
    base model already as the tenant's provider names it). Work per example: a large
    request's runs in a child process (JobsApi.off_loop), so it takes and gives bytes."""
    request: Any = CreateTunedModelRequest.FromString(raw)
    source = request.tuned_model
    job = tuning_job_pb2.TuningJob(
        base_model=base_model,
        display_name=source.display_name,
        description=source.description,
        hyperparameters=_hyperparameters(source.tuning_task.hyperparameters),
    )
    examples = source.tuning_task.training_data.examples.examples
    job.training_examples.extend(
        tuning_job_pb2.TrainingExample(text_input=e.text_input, output=e.output) for e in examples
    )
    wire = tuning_service_pb2.CreateTuningJobRequest(
        request_id=request_id_for(model_id), tuning_job=job
    )
    return wire.SerializeToString()


def _hyperparameters(given: Any) -> tuning_job_pb2.Hyperparameters:
    h = tuning_job_pb2.Hyperparameters()
    if given.HasField("epoch_count"):
        h.epoch_count = given.epoch_count
    if given.HasField("batch_size"):
        h.batch_size = given.batch_size
    chosen = given.WhichOneof("learning_rate_option")
    if chosen == "learning_rate":
        h.learning_rate = given.learning_rate
    elif chosen == "learning_rate_multiplier":
        h.learning_rate_multiplier = given.learning_rate_multiplier
    return h
