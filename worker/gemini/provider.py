"""GeminiProvider: the TuningProvider interface over the Gemini API."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from core.domain.job import job_id_of_model
from core.domain.snapshots import Snapshot
from core.domain.upstream import UpstreamRef, UpstreamStatus
from core.errors import UpstreamAlreadyExists, UpstreamNotFound
from core.security.token_source import TokenSource
from core.upstream_http import answer_text, parse_time
from worker.gemini.client import GeminiClient
from worker.gemini.json_mapping import (
    status_from_model,
    status_from_operation,
    tuned_model_body,
)
from worker.provider import OwnedPage, OwnedResource, TuningRequest

log = logging.getLogger(__name__)

MODEL_NAME_PREFIX = "tunedModels/"
TUNED_MODEL = "tunedModel"
"""The one kind of resource the platform makes on the Gemini API."""


class GeminiProvider:
    """Tuning through `tunedModels`: the job is a tuned model and its create operation."""

    def __init__(self, client: GeminiClient) -> None:
        self._client = client

    def ref_for(self, model_id: str) -> UpstreamRef:
        return UpstreamRef(tuned_model=MODEL_NAME_PREFIX + model_id)

    async def create(self, auth: TokenSource, request: TuningRequest) -> UpstreamStatus:
        """Create under the job's own id; on 409 ALREADY_EXISTS, adopt what is there.

        The 409 means an earlier attempt of this same job created the model and the
        worker died (or the answer was lost) before recording it. The operation is
        then found by listing the model's operations.
        """
        body = tuned_model_body(request, await request.all_examples())
        try:
            op = await self._client.create_tuned_model(auth, request.model_id, body)
        except UpstreamAlreadyExists:
            log.info("tunedModels/%s already exists: adopting it", request.model_id)
            return await self._adopt(auth, self.ref_for(request.model_id))
        model = (
            op.get("metadata", {}).get("tunedModel") or self.ref_for(request.model_id).tuned_model
        )
        ref = UpstreamRef(tuned_model=model, operation=str(op.get("name", "")))
        return status_from_operation(op, ref)

    async def _adopt(self, auth: TokenSource, ref: UpstreamRef) -> UpstreamStatus:
        operations, _ = await self._client.list_operations(auth, ref.tuned_model)
        if operations:
            ref = UpstreamRef(tuned_model=ref.tuned_model, operation=str(operations[0]["name"]))
        return await self.status(auth, ref)

    async def status(
        self, auth: TokenSource, ref: UpstreamRef, known: Sequence[Snapshot] = ()
    ) -> UpstreamStatus:
        if ref.operation:
            op = await self._client.get_operation(auth, ref.operation)
            return status_from_operation(op, ref, known)
        model = await self._client.get_tuned_model(auth, ref.tuned_model)
        return status_from_model(model, ref, known)

    async def cancel(self, auth: TokenSource, ref: UpstreamRef) -> None:
        if ref.operation:
            await self._client.cancel_operation(auth, ref.operation)

    async def generate(self, auth: TokenSource, ref: UpstreamRef, text: str) -> str:
        answer = await self._client.generate_content(auth, ref.tuned_model, text)
        return answer_text(answer)

    async def delete(self, auth: TokenSource, ref: UpstreamRef) -> None:
        with contextlib.suppress(UpstreamNotFound):  # Already gone: what delete wants.
            await self._client.delete_tuned_model(auth, ref.tuned_model)

    async def list_owned(
        self, auth: TokenSource, *, page_size: int, page_token: str = ""
    ) -> OwnedPage:
        """A page of `tunedModels` the platform made: those named after a job."""
        models, next_token = await self._client.list_tuned_models(
            auth, page_size=page_size, page_token=page_token
        )
        owned = [r for r in map(_owned, models) if r is not None]
        return OwnedPage(owned, next_token)

    async def delete_owned(self, auth: TokenSource, resource: OwnedResource) -> None:
        await self.delete(auth, UpstreamRef(tuned_model=resource.name))


def _owned(model: dict[str, object]) -> OwnedResource | None:
    """The listed model as an OwnedResource; None if no job of the platform made it."""
    name = str(model.get("name", ""))
    job_id = job_id_of_model(name.removeprefix(MODEL_NAME_PREFIX))
    if job_id is None:
        return None
    created = parse_time(str(model.get("createTime", ""))) or 0.0
    updated = parse_time(str(model.get("updateTime", ""))) or created
    return OwnedResource(TUNED_MODEL, name, job_id, created, max(created, updated))
