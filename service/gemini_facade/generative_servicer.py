"""google.ai.generativelanguage.v1beta.GenerativeService on the platform: a tenant's
tuned models (`tunedModels/{id}`), called through the GenerationService's path.

Thin, as every servicer: Google's request is mapped onto tuning.v1's (generate_mapping:
`tunedModels/{id}` is the caller's job, what cannot be carried is refused), the
GenerationApi answers it exactly as it answers tuning.v1's GenerateContent (bounds,
tenancy, the job's state, quotas, the training format, the caller's deadline), and the
answer, or each chunk of a stream, is mapped back. An error that names the job names it
as the caller did (`tunedModels/{id}`), so a guide's user never meets a `tuningJobs/`
name they did not send.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import grpc
from google.ai import generativelanguage_v1beta as glm

from core.domain.states import JobState
from core.errors import ModelNotReady, RequestError
from core.runtime.settings import Settings
from service.auth import current_tenant
from service.errors import mapped_errors, mapped_stream_errors
from service.gemini_facade.generate_mapping import google_response, tuning_request
from service.gemini_facade.methods import Method
from service.gemini_facade.models import STATES, State
from service.generation import GenerationApi
from service.generation_servicer import caller_deadline

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = "google.ai.generativelanguage.v1beta.GenerativeService"
METHODS = (
    Method("GenerateContent", glm.GenerateContentRequest.pb(), glm.GenerateContentResponse.pb()),
    Method(
        "StreamGenerateContent",
        glm.GenerateContentRequest.pb(),
        glm.GenerateContentResponse.pb(),
        server_streaming=True,
    ),
)


class GenerativeFacade:
    """Implements GenerateContent and StreamGenerateContent on tuned models."""

    def __init__(
        self,
        api: GenerationApi,
        *,
        max_reported_violations: int = Settings.max_reported_violations,
    ) -> None:
        self._api = api
        self._max_reported = max_reported_violations

    @mapped_errors
    async def GenerateContent(self, request: Any, context: Context) -> glm.GenerateContentResponse:
        asked = glm.GenerateContentRequest.wrap(request)
        tenant = current_tenant()
        sent = tuning_request(tenant, asked, self._max_reported)
        # A cancelled call cancels this task, and so the upstream request it awaits.
        with caller_deadline(context), _named_as_asked(sent.model, asked.model):
            answer = await self._api.generate(tenant, sent)
        return google_response(answer)

    @mapped_stream_errors
    async def StreamGenerateContent(
        self, request: Any, context: Context
    ) -> AsyncGenerator[glm.GenerateContentResponse]:
        asked = glm.GenerateContentRequest.wrap(request)
        tenant = current_tenant()
        sent = tuning_request(tenant, asked, self._max_reported)
        # The deadline bounds the whole stream; a cancelled call closes the upstream's.
        with caller_deadline(context), _named_as_asked(sent.model, asked.model):
            chunks = self._api.stream(tenant, sent)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    yield google_response(chunk)


@contextlib.contextmanager
def _named_as_asked(job_name: str, model: str) -> Iterator[None]:
    """A request error naming the job (`tuningJobs/...`) names the model the caller sent;
    one of a model not ready names its state as the Gemini API does (CREATING, FAILED)."""
    try:
        yield
    except ModelNotReady as exc:
        state: str = State(STATES[JobState(exc.state)]).name
        exc.message = f"{model} is {state}: only an ACTIVE tuned model can be called"
        exc.metadata = {"state": state}
        raise
    except RequestError as exc:
        exc.message = exc.message.replace(job_name, model)
        raise
