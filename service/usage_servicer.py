"""The UsageService servicer: read the request, call UsageApi, map the answer.

Admin-only (service.auth: a service without a role of its own needs `admin`).
"""

from __future__ import annotations

from typing import Any

import grpc

from core.domain.usage import used_fraction
from service.errors import mapped_errors
from service.usage_api import TenantMonth, UsageApi
from service.wrapping import service_handler
from tuning.v1 import usage_service_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = pb.DESCRIPTOR.services_by_name["UsageService"]


class UsageServicer:
    """Implements tuning.v1.UsageService."""

    def __init__(self, api: UsageApi) -> None:
        self._api = api

    @mapped_errors
    async def GetTenantUsage(
        self, request: pb.GetTenantUsageRequest, context: Context
    ) -> pb.TenantUsage:
        return usage_to_proto(await self._api.get(request.tenant, request.month))

    @mapped_errors
    async def ListTenantUsage(
        self, request: pb.ListTenantUsageRequest, context: Context
    ) -> pb.ListTenantUsageResponse:
        found, token = await self._api.list_usage(
            request.month, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListTenantUsageResponse(
            usage=[usage_to_proto(u) for u in found], next_page_token=token
        )


def usage_to_proto(found: TenantMonth) -> pb.TenantUsage:
    u, budget = found.usage, found.training_token_budget
    return pb.TenantUsage(
        tenant=u.tenant,
        month=u.month,
        jobs_created=u.jobs_created,
        training_examples=u.training_examples,
        estimated_training_tokens=u.estimated_training_tokens,
        billable_training_tokens=u.billable_training_tokens,
        generate_requests=u.generate_requests,
        generate_prompt_tokens=u.generate_prompt_tokens,
        generate_candidate_tokens=u.generate_candidate_tokens,
        training_token_budget=budget,
        budget_used_fraction=used_fraction(u.estimated_training_tokens, budget),
    )


def generic_handler(servicer: UsageServicer) -> grpc.GenericRpcHandler:
    """The UsageService's method handlers (service.wrapping.service_handler)."""
    return service_handler(SERVICE, servicer)
