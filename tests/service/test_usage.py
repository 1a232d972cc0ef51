"""The UsageService against a real system: what each tenant used in a month, for operators
only, and the monthly training token budget that refuses new jobs past it."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from core.domain.usage import month_of, next_month_start_s
from devstack.tenants import write_tenant_files
from tests.conftest import SystemFactory
from tests.harness import ADMIN, VERTEX_TENANT, State, System, examples, job_spec
from tests.rpc_errors import detail, reason
from tuning.v1 import generation_service_pb2 as gen
from tuning.v1 import (
    generation_service_pb2_grpc,
    tuning_job_pb2,
    tuning_service_pb2,
    usage_service_pb2_grpc,
)
from tuning.v1 import usage_service_pb2 as pb

pytestmark = pytest.mark.timeout(60)
CHARACTERS = sum(len(e.text_input) + len(e.output) for e in examples())
JOB_TOKENS = math.ceil(CHARACTERS / 4) * 2  # job_spec: 20 examples, 2 epochs


def usage_stub(system: System) -> usage_service_pb2_grpc.UsageServiceAsyncStub:
    return usage_service_pb2_grpc.UsageServiceStub(system.channel)


async def usage_of(system: System, tenant: str = "team-a", month: str = "") -> pb.TenantUsage:
    request = pb.GetTenantUsageRequest(tenant=tenant, month=month)
    return await usage_stub(system).GetTenantUsage(request, metadata=system.auth(ADMIN))


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_jobs_and_their_tokens_are_counted_once_per_create(
    make_system: SystemFactory,
) -> None:
    async with make_system(with_worker=False) as system:
        await system.create(request_id="first-job")
        await system.create(request_id="first-job")  # a retry: answered, not counted
        await system.create()
        await system.create("team-b")
        usage = await usage_of(system)
        assert usage.tenant == "team-a" and usage.month == month_of(time.time())  # the API's
        assert (usage.jobs_created, usage.training_examples) == (2, 40)
        assert usage.estimated_training_tokens == 2 * JOB_TOKENS
        assert (usage.training_token_budget, usage.budget_used_fraction) == (0, 0.0)
        assert (await usage_of(system, month="2020-01")).jobs_created == 0


async def test_every_tenant_is_listed_by_id_in_pages(make_system: SystemFactory) -> None:
    async with make_system(with_worker=False) as system:
        await system.create("team-b")
        stub, auth = usage_stub(system), system.auth(ADMIN)
        first = await stub.ListTenantUsage(pb.ListTenantUsageRequest(page_size=2), metadata=auth)
        assert [u.tenant for u in first.usage] == ["team-a", "team-b"]
        assert first.usage[1].jobs_created == 1
        rest = await stub.ListTenantUsage(
            pb.ListTenantUsageRequest(page_size=2, page_token=first.next_page_token), metadata=auth
        )
        assert [u.tenant for u in rest.usage] == ["team-ro", VERTEX_TENANT]
        assert rest.next_page_token == ""


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"tenant": ""}, "tenant"),
        ({"tenant": "Team A"}, "tenant"),
        ({"tenant": "team-a", "month": "2026-13"}, "month"),
        ({"tenant": "team-a", "month": "2026-1" * 1000}, "month"),
    ],
)
async def test_bad_requests_name_the_field(
    api_only: System, request_fields: dict[str, str], field: str
) -> None:
    request = pb.GetTenantUsageRequest(**request_fields)
    error = await refused(
        usage_stub(api_only).GetTenantUsage(request, metadata=api_only.auth(ADMIN))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = detail(error, error_details_pb2.BadRequest).field_violations
    assert [v.field for v in violations] == [field]
    assert len(error.details() or "") < 300


async def test_unknown_tenants_and_tokens_are_refused(api_only: System) -> None:
    stub, auth = usage_stub(api_only), api_only.auth(ADMIN)
    missing = await refused(
        stub.GetTenantUsage(pb.GetTenantUsageRequest(tenant="nobody"), metadata=auth)
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    for token in ("4", "-1", "x" * 100, "99999"):
        bad = await refused(
            stub.ListTenantUsage(pb.ListTenantUsageRequest(page_token=token), metadata=auth)
        )
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT, token
    size = await refused(
        stub.ListTenantUsage(pb.ListTenantUsageRequest(page_size=1001), metadata=auth)
    )
    assert size.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_tenants_token_may_not_read_usage(api_only: System) -> None:
    stub = usage_stub(api_only)
    for call in (
        stub.GetTenantUsage(pb.GetTenantUsageRequest(tenant="team-a"), metadata=api_only.auth()),
        stub.ListTenantUsage(pb.ListTenantUsageRequest(), metadata=api_only.auth("team-b")),
    ):
        assert (await refused(call)).code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_job_past_the_monthly_budget_is_refused_with_its_details(
    make_system: SystemFactory,
) -> None:
    budget = JOB_TOKENS * 2 + JOB_TOKENS // 2
    async with make_system(with_worker=False, tenant_training_token_budget=budget) as system:
        await system.create()
        await system.create()
        error = await refused(system.create(display_name="one too many"))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason(error) == "TRAINING_BUDGET_SPENT"
        failure = detail(error, error_details_pb2.QuotaFailure)
        assert failure.violations[0].subject == "tenant:team-a"
        info = detail(error, error_details_pb2.ErrorInfo).metadata
        assert dict(info) == {
            "budget": str(budget),
            "used": str(2 * JOB_TOKENS),
            "requested": str(JOB_TOKENS),
        }
        retry_s = detail(error, error_details_pb2.RetryInfo).retry_delay.seconds
        assert abs(retry_s - (next_month_start_s(time.time()) - time.time())) < 5  # month's end
        assert len((await system.list_jobs()).tuning_jobs) == 2  # nothing stored for it
        dry_run = tuning_service_pb2.CreateTuningJobRequest(
            tuning_job=job_spec(), validate_only=True
        )
        error = await refused(system.stub.CreateTuningJob(dry_run, metadata=system.auth()))
        assert reason(error) == "TRAINING_BUDGET_SPENT"  # a dry run says so too
        usage = await usage_of(system)
        assert usage.jobs_created == 2 and usage.training_token_budget == budget
        assert usage.budget_used_fraction == pytest.approx(2 * JOB_TOKENS / budget)
        small = [tuning_job_pb2.TrainingExample(text_input="1", output="2")] * 20
        one_epoch = tuning_job_pb2.Hyperparameters(epoch_count=1, batch_size=4)
        await system.create(training_examples=small, hyperparameters=one_epoch)  # 10 tokens
        await system.create("team-b")  # another tenant is not affected


async def test_generate_calls_and_billable_tokens_are_counted(system: System) -> None:
    hyper = tuning_job_pb2.Hyperparameters(epoch_count=2, adapter_size=4)
    job = await system.create(VERTEX_TENANT, base_model="gemini-2.5-flash", hyperparameters=hyper)
    done = await system.finish_training(job.name, VERTEX_TENANT)
    assert done.state == State.SUCCEEDED, done.error
    billable = done.tuning_data_stats.billable_tokens
    turn = gen.Content(role="user", parts=[gen.Part(text="hello")])
    stub = generation_service_pb2_grpc.GenerationServiceStub(system.channel)
    answers = [
        await stub.GenerateContent(
            gen.GenerateContentRequest(model=job.name, contents=[turn]),
            metadata=system.auth(VERTEX_TENANT),
        )
        for _ in range(2)
    ]

    async def counted() -> bool:
        return (await usage_of(system, VERTEX_TENANT)).generate_requests == 2

    await system.eventually(counted)  # settlements are written after the answers
    usage = await usage_of(system, VERTEX_TENANT)
    assert billable > 0 and usage.billable_training_tokens == billable
    prompt = sum(a.usage_metadata.prompt_token_count for a in answers)
    candidates = sum(a.usage_metadata.candidates_token_count for a in answers)
    assert (usage.generate_prompt_tokens, usage.generate_candidate_tokens) == (prompt, candidates)


async def test_a_tenants_own_budget_comes_from_the_tenants_file(
    make_system: SystemFactory,
) -> None:
    async with make_system(with_worker=False) as system:
        tenants = dict(system.tenants)
        own: dict[str, float] = {"training_token_budget": JOB_TOKENS}
        tenants["team-b"] = dataclasses.replace(tenants["team-b"], quotas=own)
        write_tenant_files(system.tenants_file.parent, list(tenants.values()))
        await asyncio.sleep(1.1)  # the file is looked at again at most once a second
        await system.create("team-b")
        error = await refused(system.create("team-b", display_name="second"))
        assert reason(error) == "TRAINING_BUDGET_SPENT"
        assert (await usage_of(system, "team-b")).budget_used_fraction == 1.0
        for _ in range(2):
            await system.create()  # team-a keeps the default: no budget
