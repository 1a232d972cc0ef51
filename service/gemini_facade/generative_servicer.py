"""google.ai.generativelanguage.v1beta.GenerativeService on the platform: a tenant's
tuned models (`tunedModels/{id}`), called through the GenerationService's path.

PLACEHOLDER: every method answers UNIMPLEMENTED until it is written.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.ai import generativelanguage_v1beta as glm

from service.gemini_facade.methods import Method

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
    """Implements GenerateContent and StreamGenerateContent on tuned models (placeholder)."""

    def __getattr__(self, name: str) -> Any:
        if name not in {m.name for m in METHODS}:
            raise AttributeError(name)

        async def unimplemented(request: Any, context: Context) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not served yet")

        return unimplemented
