"""The GenerationService servicer: read the request, call GenerationApi within the call's
deadline, map the errors (a stream's after the chunks it sent)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import grpc

from core.runtime.deadline import within
from service.auth import current_tenant
from service.errors import mapped_errors, mapped_stream_errors
from service.generation import GenerationApi
from service.wrapping import service_handler
from tuning.v1 import generation_service_pb2

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = generation_service_pb2.DESCRIPTOR.services_by_name["GenerationService"]


class GenerationServicer:
    """Implements tuning.v1.GenerationService."""

    def __init__(self, api: GenerationApi) -> None:
        self._api = api

    @property
    def api(self) -> GenerationApi:
        """The generate path, which the Gemini API facade (service.gemini_facade) serves too."""
        return self._api

    async def aclose(self) -> None:
        """Finish what the calls left running (their settlements), once the server stopped."""
        await self._api.aclose()

    @mapped_errors
    async def GenerateContent(
        self, request: generation_service_pb2.GenerateContentRequest, context: Context
    ) -> generation_service_pb2.GenerateContentResponse:
        # A cancelled call cancels this task, and so the upstream request it awaits.
        with caller_deadline(context):
            return await self._api.generate(current_tenant(), request)

    @mapped_stream_errors
    async def StreamGenerateContent(
        self, request: generation_service_pb2.GenerateContentRequest, context: Context
    ) -> AsyncGenerator[generation_service_pb2.GenerateContentResponse]:
        # The deadline bounds the whole stream; a cancelled call cancels this task while
        # it waits for the next chunk, and so closes the upstream stream.
        with caller_deadline(context):
            chunks = self._api.stream(current_tenant(), request)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    yield chunk


def caller_deadline(context: Context) -> contextlib.AbstractContextManager[None]:
    """The upstream requests made inside end by the call's deadline, if the caller set one."""
    left_s = context.time_remaining()
    return contextlib.nullcontext() if left_s is None else within(left_s)


def generic_handler(servicer: GenerationServicer) -> grpc.GenericRpcHandler:
    """The GenerationService's method handlers (service.wrapping.service_handler)."""
    return service_handler(SERVICE, servicer)
