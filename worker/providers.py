"""Which provider serves a job: the Gemini API's, or Vertex AI's at the job's target.

A job's provider is fixed when it is created (`Job.provider`, the tenant's provider then),
so a tenant moved to another provider in the tenants file keeps its running jobs where they
are; the reconciler, which looks for what a tenant has upstream now, asks by the tenant's
current provider. One Vertex provider is made per target (project, location, bucket,
prefix) on first use and kept: targets are as many as the tenants file names.
"""

from __future__ import annotations

from collections.abc import Callable

from core.domain.providers import ProviderChoice, ProviderKind, VertexTarget
from worker.provider import TuningProvider


class Providers:
    """Providers by choice; `vertex_at` makes the provider for one Vertex target."""

    def __init__(
        self,
        gemini: TuningProvider,
        vertex_at: Callable[[VertexTarget], TuningProvider] | None = None,
    ) -> None:
        self._gemini = gemini
        self._vertex_at = vertex_at
        self._vertex: dict[VertexTarget, TuningProvider] = {}

    @classmethod
    def only(cls, provider: TuningProvider) -> Providers:
        """Every job to `provider`, whatever its choice (tests of one upstream)."""
        return cls(provider, lambda _target: provider)

    def of(self, choice: ProviderChoice) -> TuningProvider:
        """The provider for `choice`. ValueError for a Vertex choice without a target, or
        when this worker was built without Vertex AI."""
        if choice.kind is not ProviderKind.VERTEX:
            return self._gemini
        if choice.vertex is None or self._vertex_at is None:
            raise ValueError("a Vertex AI job needs a target and a worker built for Vertex AI")
        found = self._vertex.get(choice.vertex)
        if found is None:
            found = self._vertex[choice.vertex] = self._vertex_at(choice.vertex)
        return found
