"""RetuneTuningJob: a new job from an existing job's recipe, on a new base model.

A job keeps its recipe: its training data (the dataset it was made from, or its inline
examples, kept with the job until it is deleted: docs/architecture.md, decision 28), its
hyperparameters, prompt template, system instruction, validation dataset, labels and
description. A re-tune writes that recipe out as the CreateTuningJobRequest that would
make it on `base_model` and sends it down CreateTuningJob's own path
(service.jobs_api.JobsApi.create), so every rule of a create holds unchanged: the base
model must be one of the tenant's provider as the tenants file says *now* (a recipe
moves to the other provider when the tenant has), a field that provider refuses is
INVALID_ARGUMENT naming it, a retired base model is refused, and the quotas and the
request_id's idempotency are a create's. The new job names its source (`source_job`).

The source may be in any state (a FAILED job's recipe may be worth running again); a
deleted one, or another tenant's, is NOT_FOUND. Its data must still exist: a deleted
dataset is FAILED_PRECONDITION naming it (RECIPE_DATA_GONE), never a silent change of
recipe. Violations of what the retune request set name the request's fields
(`base_model`, `hyperparameters.learning_rate`, `display_name`); a violation of a field
the recipe brought keeps its path in the recipe (`tuning_job.system_instruction`).
"""

from __future__ import annotations

import orjson

from core.domain.job import Job
from core.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Reason
from core.redis.job_store import JobStore
from service.convert import hyperparameters_to_proto
from service.create_preparation import CreateCall
from service.dataset_checker import DatasetChecker
from service.dataset_store import DatasetStore
from service.datasets_api import dataset_id_of
from service.jobs_api import JobsApi, job_id_of
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

MAX_BASE_MODEL_CHARS = 128
"""Longer base model names are refused before anything is read (the longest is ~40)."""
_REQUEST_FIELDS = frozenset({"base_model", "hyperparameters", "display_name"})
"""The recipe's fields a retune request may set: violations of them name the request's."""
_RESET_HINT = "; reset_hyperparameters starts from the provider's defaults"


class Retuner:
    """Re-tunes a tenant's job: `jobs` creates, `store` and `datasets` hold the recipe;
    `checker` builds a request of more than `small_request_bytes` of examples off the
    event loop (100,000 examples take half a second to put in a message)."""

    def __init__(
        self,
        jobs: JobsApi,
        store: JobStore,
        datasets: DatasetStore,
        *,
        checker: DatasetChecker,
        small_request_bytes: int,
    ) -> None:
        self._jobs = jobs
        self._store = store
        self._datasets = datasets
        self._checker = checker
        self._small_request_bytes = small_request_bytes

    async def retune(
        self, tenant: str, request: tuning_service_pb2.RetuneTuningJobRequest
    ) -> tuple[Job, int]:
        """The new job and its queue position, as CreateTuningJob answers them."""
        source_id = _checked(request)
        source = await self._source(tenant, source_id, request.name)
        examples = await self._recipe_data(source)
        raw = recipe_request(source, request).SerializeToString()
        if examples:
            raw = await self._with_examples(tenant, raw, examples)
        call = CreateCall(raw, request.request_id, request.validate_only)
        try:
            return await self._jobs.create(tenant, call, source_job=source.id)
        except InvalidArgument as exc:
            raise _as_retune(exc, request) from None

    async def _source(self, tenant: str, job_id: str, name: str) -> Job:
        job = await self._store.get(tenant, job_id)
        if job is None or job.deleted:  # another tenant's too: the same words
            raise NotFound(f"{name} not found")
        return job

    async def _with_examples(self, tenant: str, raw: bytes, examples: bytes) -> bytes:
        if len(examples) <= self._small_request_bytes:
            return with_examples(raw, examples)
        return await self._checker.run(tenant, with_examples, raw, examples)

    async def _recipe_data(self, source: Job) -> bytes:
        """The source's inline examples as stored (none for a job made from a dataset),
        once its datasets are known to exist still."""
        for name, field in (
            (source.dataset, "tuning_job.dataset"),
            (source.validation_dataset, "tuning_job.validation_dataset"),
        ):
            if name and await self._datasets.get(source.tenant, dataset_id_of(name, field)) is None:
                raise _data_gone(f"{source.name} was made from {name}, which no longer exists")
        if source.dataset:
            return b""
        raw = await self._store.examples(source.tenant, source.id)
        if raw is None:
            raise _data_gone(f"{source.name}'s inline examples are no longer kept")
        return raw


def recipe_request(
    source: Job, request: tuning_service_pb2.RetuneTuningJobRequest
) -> tuning_service_pb2.CreateTuningJobRequest:
    """The CreateTuningJobRequest that makes `source`'s recipe on the request's model,
    but for its inline examples (`with_examples`)."""
    spec = tuning_job_pb2.TuningJob(
        base_model=request.base_model,
        display_name=request.display_name or source.display_name,
        description=source.description,
        hyperparameters=_hyperparameters(source, request),
        dataset=source.dataset,
        system_instruction=source.system_instruction,
        prompt_template=source.prompt_template,
        validation_dataset=source.validation_dataset,
        export_last_checkpoint_only=source.export_last_checkpoint_only,
    )
    spec.labels.update(source.labels)
    return tuning_service_pb2.CreateTuningJobRequest(
        tuning_job=spec, request_id=request.request_id, validate_only=request.validate_only
    )


def with_examples(raw: bytes, examples: bytes) -> bytes:
    """The serialized create `raw` with `examples` (as a job stores them: core.domain.job
    `encode_pairs`) as its training examples; in a child process for many of them."""
    request = tuning_service_pb2.CreateTuningJobRequest.FromString(raw)
    request.tuning_job.training_examples.extend(
        tuning_job_pb2.TrainingExample(text_input=given, output=wanted)
        for given, wanted in orjson.loads(examples)
    )
    return request.SerializeToString()


def _hyperparameters(
    source: Job, request: tuning_service_pb2.RetuneTuningJobRequest
) -> tuning_job_pb2.Hyperparameters:
    """The source's (or none, on reset), each field the request sets replacing its own;
    a learning rate set replaces the source's either kind (they are one oneof)."""
    chosen = tuning_job_pb2.Hyperparameters()
    if not request.reset_hyperparameters:
        chosen.CopyFrom(hyperparameters_to_proto(source.hyperparameters))
    chosen.MergeFrom(request.hyperparameters)
    return chosen


def _checked(request: tuning_service_pb2.RetuneTuningJobRequest) -> str:
    """The source's id; INVALID_ARGUMENT, before any lookup, for a bad name or model."""
    violations = []
    if not request.base_model:
        violations.append(FieldViolation("base_model", "required: the new job's base model"))
    elif len(request.base_model) > MAX_BASE_MODEL_CHARS:
        violations.append(
            FieldViolation("base_model", f"at most {MAX_BASE_MODEL_CHARS} characters")
        )
    try:
        source_id = job_id_of(request.name)
    except InvalidArgument as exc:
        violations = exc.violations + violations
        source_id = ""
    if violations:
        first = violations[0]
        raise InvalidArgument(f"invalid re-tune: {first.field}: {first.description}", violations)
    return source_id


def _as_retune(
    exc: InvalidArgument, request: tuning_service_pb2.RetuneTuningJobRequest
) -> InvalidArgument:
    """A create's refusal in the retune request's words (see the module's docstring)."""
    violations = [_retune_violation(v, request) for v in exc.violations]
    if not violations:
        return exc
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return InvalidArgument(
        f"invalid re-tune: {first.field}: {first.description}{more}",
        violations,
        reason=exc.reason,
    )


def _retune_violation(
    violation: FieldViolation, request: tuning_service_pb2.RetuneTuningJobRequest
) -> FieldViolation:
    path = violation.field.removeprefix("tuning_job.")
    top = path.split(".", 1)[0]
    if path == violation.field or top not in _REQUEST_FIELDS:
        return violation
    if top == "display_name" and not request.display_name:
        return violation  # the source's display name, not one the request sent
    hint = _RESET_HINT if top == "hyperparameters" and not request.reset_hyperparameters else ""
    return FieldViolation(path, violation.description + hint)


def _data_gone(why: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{why}: the recipe cannot be re-tuned; upload the examples again and create a job",
        reason=Reason.RECIPE_DATA_GONE,
    )
