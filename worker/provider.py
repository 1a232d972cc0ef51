"""The provider interface: every upstream call the worker makes goes through it.

Gemini API (`worker.gemini`) is the first provider, Vertex AI tuning jobs
(`worker.vertex`, see shared/reference/vertex-tuning-api.md) the second, which is why
the interface speaks of jobs and references, not of tunedModels and operations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.domain import prompt_template
from core.domain.job import Example, Hyperparameters, Job
from core.domain.snapshots import Snapshot
from core.domain.upstream import UpstreamRef, UpstreamStatus
from core.security.token_source import TokenSource

ExampleBatches = Callable[[], AsyncIterator[list[Example]]]
"""Examples read as they are needed, a batch at a time (core.dataset_files)."""


@dataclass(frozen=True)
class TuningRequest:
    """Everything an upstream needs to start tuning one job."""

    model_id: str
    base_model: str
    display_name: str
    description: str
    hyperparameters: Hyperparameters
    examples: list[Example]
    system_instruction: str = ""
    """Applied to every example (Vertex AI; the API refuses it for the Gemini API)."""
    export_last_checkpoint_only: bool = False
    """Keep only the last epoch's checkpoint (Vertex AI)."""
    validation_examples: list[Example] = field(default_factory=list)
    """Examples to validate on during training (Vertex AI); none: no validation."""
    stored_examples: ExampleBatches | None = None
    """For a job made from a dataset, its examples in place of `examples`: read from the
    job's file as they are sent upstream, never all at once (a file may be 1 GB)."""
    tenant: str = ""
    """The job's tenant, labelled where the upstream takes labels (Vertex AI), so that
    tenants tuning in one project tell their resources apart."""
    prompt_template: str = ""
    """The job's prompt template: every input, training and validation, is sent rendered
    through it (core.domain.prompt_template), as Generate renders the prompts."""

    async def example_batches(self) -> AsyncIterator[list[Example]]:
        """The training examples, a batch at a time, their inputs in the job's format."""
        if self.stored_examples is None:
            yield self._rendered(self.examples)
            return
        async for batch in self.stored_examples():
            yield self._rendered(batch)

    def _rendered(self, examples: list[Example]) -> list[Example]:
        return rendered(examples, self.prompt_template)

    async def all_examples(self) -> list[Example]:
        """Every training example at once (an upstream that takes them inline: the API
        let only a small enough dataset be used with it)."""
        return [example async for batch in self.example_batches() for example in batch]

    @classmethod
    def from_job(
        cls,
        job: Job,
        examples: list[Example],
        validation: list[Example] | None = None,
        stored: ExampleBatches | None = None,
    ) -> TuningRequest:
        return cls(
            model_id=job.tuned_model_id,
            base_model=job.base_model,
            display_name=job.display_name,
            description=job.description,
            hyperparameters=job.hyperparameters,
            examples=examples,
            system_instruction=job.system_instruction,
            export_last_checkpoint_only=job.export_last_checkpoint_only,
            validation_examples=rendered(validation or [], job.prompt_template),
            stored_examples=stored,
            tenant=job.tenant,
            prompt_template=job.prompt_template,
        )


def rendered(examples: list[Example], template: str) -> list[Example]:
    """The examples with their inputs rendered through `template` (none: as they are)."""
    if not template:
        return examples
    form = prompt_template.parsed(template)
    return [dataclasses.replace(e, text_input=form.render(e.text_input)) for e in examples]


@dataclass(frozen=True)
class OwnedResource:
    """Something upstream the platform made for one job, as a listing finds it.

    Gemini API makes one kind, the tuned model named after the job (`TuningRequest.model_id`).
    Vertex AI makes several per job (the tuning job, its tuned model, endpoints, the staged
    training file), found by the label the platform puts on each; a provider reports each
    one with the job it was made for, and the reconciler (worker.reconciler) decides about
    all of them by that job alone.
    """

    kind: str
    """What it is upstream, e.g. `tunedModel`; for logs and for `delete_owned`."""
    name: str
    """Its full upstream name, e.g. `tunedModels/tj-j...`."""
    job_id: str
    """The job it was made for."""
    create_time: float
    """When the upstream made it (seconds since the epoch, by the upstream's clock)."""
    update_time: float
    """When it last changed upstream (its training ending counts), by the same clock."""
    tenant: str = ""
    """The tenant whose job it is, where the upstream carries it (a Vertex AI label);
    empty when not known."""


@dataclass(frozen=True)
class OwnedPage:
    """One page of a listing of owned resources; `next_page_token` is empty on the last."""

    resources: list[OwnedResource]
    next_page_token: str


class TuningProvider(Protocol):
    """An upstream tuning service. Errors are core.errors' `UpstreamError` types."""

    def ref_for(self, model_id: str) -> UpstreamRef:
        """Where a job created under `model_id` lives, known before or without creating it.

        An upstream that names its jobs itself answers a ref with only `model_id`, which
        `status`, `cancel` and `delete` find the job by (the statuses they answer carry
        the full ref)."""
        ...

    async def create(self, auth: TokenSource, request: TuningRequest) -> UpstreamStatus:
        """Start tuning; the job's first status. Adopts an existing `request.model_id`."""
        ...

    async def status(
        self, auth: TokenSource, ref: UpstreamRef, known: Sequence[Snapshot] = ()
    ) -> UpstreamStatus:
        """The job's state, progress and loss now. UpstreamNotFound if it is gone.

        `known`: the snapshots the job has already (from earlier polls), which the answer's
        may reuse rather than parse again."""
        ...

    async def cancel(self, auth: TokenSource, ref: UpstreamRef) -> None:
        """Ask the upstream to stop training (best effort; confirm with `status`)."""
        ...

    async def generate(self, auth: TokenSource, ref: UpstreamRef, text: str) -> str:
        """The tuned model's answer to `text` (the model must have succeeded)."""
        ...

    async def delete(self, auth: TokenSource, ref: UpstreamRef) -> None:
        """Delete the tuned model; succeeds if it is already gone."""
        ...

    async def list_owned(
        self, auth: TokenSource, *, page_size: int, page_token: str = ""
    ) -> OwnedPage:
        """One page of what the platform made upstream with this credential, whatever the
        state of its job; what others made there is left out. Read-only."""
        ...

    async def delete_owned(self, auth: TokenSource, resource: OwnedResource) -> None:
        """Delete one resource `list_owned` found; succeeds if it is already gone."""
        ...
