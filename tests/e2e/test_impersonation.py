"""Vertex AI tenants without stored secrets: the platform impersonates their service accounts.

team-sa's tenants entry names a service account instead of a credentials file, and the
emulator's IAM lets the platform's identity impersonate it: its job is staged, tuned and
followed to SUCCEEDED with tokens minted for that account (which owns the upstream job).
team-nosa's account has not granted the platform roles/iam.serviceAccountTokenCreator: its
job fails at once, saying which account and which role.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2

from core.redis.client import Redis
from core.security.impersonation import IMPERSONATION_ROLE
from devstack.redis_server import RedisServer
from devstack.tenants import LocalTenant
from tests import harness
from tests.harness import System, local_tenants, running_system
from tests.rpc_errors import reason
from tuning.v1 import tuning_job_pb2

pytestmark = pytest.mark.timeout(90)
State = tuning_job_pb2.TuningJob.State
ALLOWED, DENIED = "team-sa", "team-nosa"
ALLOWED_SA = "vertex-tuner@team-sa-project.iam.gserviceaccount.com"
DENIED_SA = "vertex-tuner@team-nosa-project.iam.gserviceaccount.com"


def vertex_provider(tenant: str) -> dict[str, str]:
    return {
        "kind": "vertex",
        "project": f"{tenant}-project",
        "location": "us-central1",
        "staging": f"gs://{tenant}-tuning/platform",
    }


def impersonating_tenants() -> dict[str, LocalTenant]:
    """The harness's tenants and two Vertex AI tenants that name service accounts."""
    tenants = local_tenants()
    tenants[ALLOWED] = LocalTenant(
        ALLOWED, provider=vertex_provider(ALLOWED), service_account=ALLOWED_SA
    )
    tenants[DENIED] = LocalTenant(
        DENIED,
        provider=vertex_provider(DENIED),
        service_account=DENIED_SA,
        platform_may_impersonate=False,
    )
    return tenants


@pytest.fixture
async def system(
    monkeypatch: pytest.MonkeyPatch,
    redis: Redis,
    redis_server: RedisServer,
    prefix: str,
    tmp_path: Path,
) -> AsyncIterator[System]:
    """The harness's system, with the two tenants above in its tenants and grants files."""
    monkeypatch.setattr(harness, "local_tenants", impersonating_tenants)
    async with running_system(redis, redis_server.url, prefix, tmp_path) as running:
        yield running


def vertex_fields() -> dict[str, Any]:
    hyper = tuning_job_pb2.Hyperparameters(epoch_count=2, adapter_size=4)
    return {"base_model": "gemini-2.5-flash", "hyperparameters": hyper}


async def upstream_jobs(system: System) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=system.emulator_url) as http:
        jobs: list[dict[str, Any]] = (await http.get("/_emulator/vertex/tuningJobs")).json()[
            "tuningJobs"
        ]
    return jobs


def error_reason(job: tuning_job_pb2.TuningJob) -> str:
    for detail in job.error.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


async def test_an_impersonating_tenants_job_succeeds_as_its_service_account(
    system: System,
) -> None:
    assert not (system.tenants_file.parent / f"{ALLOWED}-oauth.json").exists()
    job = await system.create(tenant=ALLOWED, **vertex_fields())
    done = await system.finish_training(job.name, tenant=ALLOWED)
    assert done.state == State.SUCCEEDED, done.error
    assert "/endpoints/" in done.tuned_model_endpoint
    jobs = await upstream_jobs(system)
    assert [(j["project"], j["owner"]) for j in jobs] == [(f"{ALLOWED}-project", ALLOWED_SA)]
    assert await system.upstream_requests("serviceAccounts.generateAccessToken") >= 1


async def test_a_tenant_the_platform_may_not_impersonate_gets_a_clear_failure(
    system: System,
) -> None:
    job = await system.create(tenant=DENIED, **vertex_fields())
    failed = await system.wait_for(job.name, {State.FAILED}, tenant=DENIED)
    assert error_reason(failed) == "IMPERSONATION_REFUSED"
    assert DENIED_SA in failed.error.message
    assert IMPERSONATION_ROLE in failed.error.message
    assert await upstream_jobs(system) == []


async def test_no_credential_is_stored_for_an_impersonating_tenant(system: System) -> None:
    pasted = json.dumps(LocalTenant("someone").authorized_user())
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: system.set_credential(ALLOWED, pasted),
        lambda: system.get_credential(ALLOWED),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call()
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason(refused.value) == "IMPERSONATION_CONFIGURED"
        assert ALLOWED_SA in str(refused.value.details())
