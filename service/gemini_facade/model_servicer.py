"""google.ai.generativelanguage.v1beta.ModelService on the platform: tuned models as jobs.

Thin, as every servicer here: each method reads the request, calls JobsApi (through
service.gemini_facade's translations) and maps the answer; errors go through
`mapped_errors`. What each decision is, is written where it is made:
create_request (CreateTunedModel), models (the answers), base_models (ListModels,
GetModel and a create's base model), model_filter (ListTunedModels' filter), names.

UpdateTunedModel changes `display_name` and `description`, the fields `update_mask`
names (an empty mask: those of the two that are set, as AIP-134 implies); any other
path is INVALID_ARGUMENT naming `update_mask`. ListModels pages with offsets into the
short list of base models (the token is the offset, checked to be one).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.ai import generativelanguage_v1beta as glm
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from core.errors import AlreadyExists, FieldViolation, InvalidArgument, echo
from core.runtime.settings import Settings
from service import listing
from service.auth import current_tenant
from service.create_preparation import CreateCall
from service.errors import mapped_errors
from service.gemini_facade import models
from service.gemini_facade.base_models import BaseModels, model_message
from service.gemini_facade.create_request import (
    check_source,
    create_call,
    google_paths,
    sampling_of,
    translated,
    tuned_model_id,
)
from service.gemini_facade.methods import Method
from service.gemini_facade.model_filter import parse_model_filter
from service.gemini_facade.names import TUNED_MODEL_PREFIX, request_id_for, tuned_model_id_in
from service.gemini_facade.tuned_models import job_name_for, read_job, renamed
from service.jobs_api import JobsApi
from service.status import StatusReader

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
ListModelsResponse: Any = glm.ListModelsResponse.pb()
ListTunedModelsResponse: Any = glm.ListTunedModelsResponse.pb()
UPDATABLE = ("display_name", "description")
FILTER_SCOPE = "tunedModels:"
"""Before the filter in a page token's scope: a ListTuningJobs token is no good here."""
MAX_OFFSET_TOKEN_CHARS = 6


class ModelFacade:
    """Implements the ModelService's tuning subset over the TuningService's behaviour."""

    def __init__(self, jobs: JobsApi, status: StatusReader, settings: Settings) -> None:
        self._jobs = jobs
        self._status = status
        self._max_filter_chars = settings.max_filter_chars
        self._small_request_bytes = settings.grpc_small_request_max_bytes
        self._base_models = BaseModels(settings)

    @mapped_errors
    async def GetModel(self, request: Any, context: Context) -> Any:
        kind = self._jobs.provider_of(current_tenant()).kind
        return self._base_models.model(kind, request.name, self._jobs.now())

    @mapped_errors
    async def ListModels(self, request: Any, context: Context) -> Any:
        kind = self._jobs.provider_of(current_tenant()).kind
        names = self._base_models.offered(kind, self._jobs.now())
        size = listing.page_size_of(request.page_size)
        start = _offset(request.page_token, len(names))
        end = start + size
        return ListModelsResponse(
            models=[model_message(n) for n in names[start:end]],
            next_page_token=str(end) if end < len(names) else "",
        )

    @mapped_errors
    async def CreateTunedModel(self, request: Any, context: Context) -> operations_pb2.Operation:
        tenant = current_tenant()
        model_id = tuned_model_id(request)
        check_source(request)
        sampling = sampling_of(request)
        kind = self._jobs.provider_of(tenant).kind
        base_model = self._base_models.for_create(kind, request.tuned_model.base_model)
        try:
            call = await self._translated(tenant, request, model_id, base_model)
            job, _ = await self._jobs.create(tenant, call, facade_id=model_id, sampling=sampling)
        except InvalidArgument as exc:
            raise google_paths(exc) from None
        except AlreadyExists:
            raise AlreadyExists(
                f"{TUNED_MODEL_PREFIX}{model_id} already exists (an id, once used, stays "
                "taken, even after a delete); choose another tuned_model_id"
            ) from None
        return models.operation(job)

    async def _translated(
        self, tenant: str, request: Any, model_id: str, base_model: str
    ) -> CreateCall:
        """The create as the TuningService's; a large one's quota peeked at first."""
        raw: bytes = request.SerializeToString()
        if len(raw) > self._small_request_bytes:
            await self._jobs.peek_create_quota(tenant, request_id_for(model_id))
        wire = await self._jobs.off_loop(tenant, len(raw), translated, raw, model_id, base_model)
        return create_call(wire, model_id)

    @mapped_errors
    async def GetTunedModel(self, request: Any, context: Context) -> Any:
        model_id = tuned_model_id_in(request.name)
        job = await read_job(self._status, current_tenant(), model_id, request.name)
        return models.tuned_model(job)

    @mapped_errors
    async def ListTunedModels(self, request: Any, context: Context) -> Any:
        where = parse_model_filter(request.filter, max_chars=self._max_filter_chars)
        jobs, token = await self._jobs.list_where(
            current_tenant(),
            where,
            page_size=request.page_size,
            page_token=request.page_token,
            token_scope=FILTER_SCOPE + request.filter,
        )
        return ListTunedModelsResponse(
            tuned_models=[models.tuned_model(j) for j in jobs], next_page_token=token
        )

    @mapped_errors
    async def UpdateTunedModel(self, request: Any, context: Context) -> Any:
        given = request.tuned_model
        paths = _update_paths(given, list(request.update_mask.paths))
        model_id = tuned_model_id_in(given.name, "tuned_model.name")
        job_name = job_name_for(current_tenant(), model_id)
        with renamed(job_name, given.name):
            job = await self._jobs.describe(
                current_tenant(),
                job_name,
                display_name=given.display_name if "display_name" in paths else None,
                description=given.description if "description" in paths else None,
                path="tuned_model.",
            )
        return models.tuned_model(job)

    @mapped_errors
    async def DeleteTunedModel(self, request: Any, context: Context) -> empty_pb2.Empty:
        model_id = tuned_model_id_in(request.name)
        job_name = job_name_for(current_tenant(), model_id)
        with renamed(job_name, request.name):
            await self._jobs.delete(current_tenant(), job_name)
        return empty_pb2.Empty()


def _update_paths(given: Any, paths: list[str]) -> list[str]:
    """The fields to change: those the mask names, or, with no mask, those set."""
    if not paths:
        return [p for p in UPDATABLE if getattr(given, p)]
    unknown = [p for p in paths if p not in UPDATABLE]
    if unknown:
        raise InvalidArgument(
            f"cannot update {echo(unknown[0])}",
            [FieldViolation("update_mask", f"may name only {' and '.join(UPDATABLE)}")],
        )
    return paths


def _offset(token: str, count: int) -> int:
    """Where a ListModels page starts: 0, or the offset a previous page answered."""
    if not token:
        return 0
    if len(token) > MAX_OFFSET_TOKEN_CHARS or not token.isdecimal() or int(token) >= count:
        raise InvalidArgument(
            "invalid page_token", [FieldViolation("page_token", "is not a token ListModels gave")]
        )
    return int(token)
