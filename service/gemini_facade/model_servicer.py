"""google.ai.generativelanguage.v1beta.ModelService on the platform: tuned models as jobs.

PLACEHOLDER: every method answers UNIMPLEMENTED until it is written.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.ai import generativelanguage_v1beta as glm
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from service.gemini_facade.methods import Method

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = "google.ai.generativelanguage.v1beta.ModelService"
METHODS = (
    Method("GetModel", glm.GetModelRequest.pb(), glm.Model.pb()),
    Method("ListModels", glm.ListModelsRequest.pb(), glm.ListModelsResponse.pb()),
    Method("GetTunedModel", glm.GetTunedModelRequest.pb(), glm.TunedModel.pb()),
    Method("ListTunedModels", glm.ListTunedModelsRequest.pb(), glm.ListTunedModelsResponse.pb()),
    Method("CreateTunedModel", glm.CreateTunedModelRequest.pb(), operations_pb2.Operation),
    Method("UpdateTunedModel", glm.UpdateTunedModelRequest.pb(), glm.TunedModel.pb()),
    Method("DeleteTunedModel", glm.DeleteTunedModelRequest.pb(), empty_pb2.Empty),
)


class ModelFacade:
    """Implements the ModelService's tuning subset (placeholder)."""

    def __getattr__(self, name: str) -> Any:
        if name not in {m.name for m in METHODS}:
            raise AttributeError(name)

        async def unimplemented(request: Any, context: Context) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not served yet")

        return unimplemented
