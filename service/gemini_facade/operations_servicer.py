"""google.longrunning.Operations on the platform: the facade's create operations.

Each tuned model has one operation, its create (`tunedModels/{id}/operations/create`,
service.gemini_facade.names), answered from the job as it is now
(service.gemini_facade.models.operation). CancelOperation is CancelTuningJob: a QUEUED
job is CANCELLED at once, a running one once the upstream confirms (its operation is
done then, with the CANCELLED error).

ListOperations: `name` empty, `operations` or `tunedModels` lists the operations of
every tuned model of the tenant's, newest first, paged as ListTunedModels is;
`tunedModels/{id}` (or `tunedModels/{id}/operations`) lists that model's one. No
`filter` is offered: a non-empty one is INVALID_ARGUMENT naming `filter`.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from core.errors import FieldViolation, InvalidArgument
from service.auth import current_tenant
from service.errors import mapped_errors
from service.gemini_facade import models
from service.gemini_facade.methods import Method
from service.gemini_facade.names import (
    OPERATIONS_SUFFIX,
    tuned_model_id_in,
    tuned_model_id_of_operation,
)
from service.gemini_facade.tuned_models import job_name_for, read_job, renamed
from service.jobs_api import JobsApi
from service.listing import JobFilter
from service.status import StatusReader

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = "google.longrunning.Operations"
METHODS = (
    Method("GetOperation", operations_pb2.GetOperationRequest, operations_pb2.Operation),
    Method(
        "ListOperations",
        operations_pb2.ListOperationsRequest,
        operations_pb2.ListOperationsResponse,
    ),
    Method("CancelOperation", operations_pb2.CancelOperationRequest, empty_pb2.Empty),
)
ALL_OPERATIONS = frozenset({"", "operations", "tunedModels"})
TOKEN_SCOPE = "operations:"  # noqa: S105 (a page token scope, not a secret)
"""A page token's scope: good for ListOperations, and nothing else."""


class OperationsFacade:
    """Implements the Operations the facade's CreateTunedModel returns."""

    def __init__(self, jobs: JobsApi, status: StatusReader) -> None:
        self._jobs = jobs
        self._status = status

    @mapped_errors
    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: Context
    ) -> operations_pb2.Operation:
        model_id = tuned_model_id_of_operation(request.name)
        job = await read_job(self._status, current_tenant(), model_id, request.name)
        return models.operation(job)

    @mapped_errors
    async def CancelOperation(
        self, request: operations_pb2.CancelOperationRequest, context: Context
    ) -> empty_pb2.Empty:
        model_id = tuned_model_id_of_operation(request.name)
        job_name = job_name_for(current_tenant(), model_id)
        with renamed(job_name, request.name):
            await self._jobs.cancel(current_tenant(), job_name)
        return empty_pb2.Empty()

    @mapped_errors
    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: Context
    ) -> operations_pb2.ListOperationsResponse:
        if request.filter:
            raise InvalidArgument(
                "ListOperations takes no filter here",
                [FieldViolation("filter", "not supported; leave it empty")],
            )
        if request.name not in ALL_OPERATIONS:
            return await self._of_one_model(request.name)
        jobs, token = await self._jobs.list_where(
            current_tenant(),
            JobFilter(),
            page_size=request.page_size,
            page_token=request.page_token,
            token_scope=TOKEN_SCOPE,
        )
        return operations_pb2.ListOperationsResponse(
            operations=[models.operation(j) for j in jobs], next_page_token=token
        )

    async def _of_one_model(self, name: str) -> operations_pb2.ListOperationsResponse:
        model_name = name.removesuffix(OPERATIONS_SUFFIX)
        model_id = tuned_model_id_in(model_name)
        job = await read_job(self._status, current_tenant(), model_id, model_name)
        return operations_pb2.ListOperationsResponse(operations=[models.operation(job)])
