"""GeminiProvider: the TuningProvider interface over the Gemini API."""

from __future__ import annotations

import contextlib
import logging

from core.domain.upstream import UpstreamRef, UpstreamStatus
from core.errors import UpstreamAlreadyExists, UpstreamNotFound
from worker.credentials import TokenSource
from worker.gemini.client import GeminiClient
from worker.gemini.json_mapping import status_from_model, status_from_operation, tuned_model_body
from worker.provider import TuningRequest

log = logging.getLogger(__name__)


class GeminiProvider:
    """Tuning through `tunedModels`: the job is a tuned model and its create operation."""

    def __init__(self, client: GeminiClient) -> None:
        self._client = client

    def ref_for(self, model_id: str) -> UpstreamRef:
        return UpstreamRef(tuned_model=f"tunedModels/{model_id}")

    async def create(self, auth: TokenSource, request: TuningRequest) -> UpstreamStatus:
        """Create under the job's own id; on 409 ALREADY_EXISTS, adopt what is there.

        The 409 means an earlier attempt of this same job created the model and the
        worker died (or the answer was lost) before recording it. The operation is
        then found by listing the model's operations.
        """
        body = tuned_model_body(request)
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

    async def status(self, auth: TokenSource, ref: UpstreamRef) -> UpstreamStatus:
        if ref.operation:
            op = await self._client.get_operation(auth, ref.operation)
            return status_from_operation(op, ref)
        model = await self._client.get_tuned_model(auth, ref.tuned_model)
        return status_from_model(model, ref)

    async def cancel(self, auth: TokenSource, ref: UpstreamRef) -> None:
        if ref.operation:
            await self._client.cancel_operation(auth, ref.operation)

    async def generate(self, auth: TokenSource, ref: UpstreamRef, text: str) -> str:
        answer = await self._client.generate_content(auth, ref.tuned_model, text)
        candidates = answer.get("candidates", [])
        parts = candidates[0].get("content", {}).get("parts", []) if candidates else []
        return "".join(str(part.get("text", "")) for part in parts)

    async def delete(self, auth: TokenSource, ref: UpstreamRef) -> None:
        with contextlib.suppress(UpstreamNotFound):  # Already gone: what delete wants.
            await self._client.delete_tuned_model(auth, ref.tuned_model)
