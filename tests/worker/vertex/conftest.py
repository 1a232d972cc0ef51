"""Fixtures for the Vertex AI provider: the emulator over real HTTP, a cloud-platform tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.domain.providers import VertexTarget
from core.security.authorized_user import CLOUD_PLATFORM_SCOPE
from core.security.credentials import CredentialSource
from core.security.tenants import TenantDirectory
from core.security.token_source import TokenSource
from core.upstream_http import open_session
from devstack.tenants import LocalTenant, write_tenant_files
from emulator import EmulatorConfig, load_grants, running_emulator
from tests.clocks import FakeClock
from tests.worker.conftest import Upstream
from worker import fence
from worker.gemini import GeminiClient
from worker.vertex import StorageClient, VertexClient, VertexProvider
from worker.vertex.provider import DEFAULT_LABEL_KEY

TENANT = "team-v"
PROJECT = "tuning-demo"
LOCATION = "us-central1"
BUCKET = "staging-bucket"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"


@dataclass
class Vertex:
    """The provider and its clients, on the emulator; `upstream` has its knobs."""

    upstream: Upstream
    client: VertexClient
    storage: StorageClient
    target: VertexTarget
    provider: VertexProvider

    def auth(self) -> TokenSource:
        return self.upstream.auth(TENANT)

    async def inspect(self, path: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.upstream.url) as http:
            answer: dict[str, Any] = (await http.get(path)).json()
            return answer

    async def jobs_labelled(self, job_id: str) -> list[dict[str, Any]]:
        """Every tuning job upstream with `job_id`'s label, whoever made it."""
        jobs = (await self.inspect("/_emulator/vertex/tuningJobs")).get("tuningJobs", [])
        return [j for j in jobs if j["labels"].get(DEFAULT_LABEL_KEY) == job_id]

    async def object_names(self) -> list[str]:
        objects = (await self.inspect("/_emulator/storage/objects"))["objects"]
        return [o["name"] for o in objects if o["bucket"] == BUCKET]


@pytest.fixture
async def vertex(tmp_path: Path) -> AsyncIterator[Vertex]:
    tenants = {TENANT: LocalTenant(TENANT, scopes=(CLOUD_PLATFORM_SCOPE,))}
    tenants_file, grants_file = write_tenant_files(tmp_path, list(tenants.values()))
    clock = FakeClock()
    config = EmulatorConfig(steps_per_second=1.0, grants=load_grants(grants_file))
    async with (
        running_emulator(config, clock) as url,
        open_session(timeout_s=10.0) as http,
    ):
        with httpx.Client(timeout=10.0) as token_http:
            credentials = CredentialSource(
                TenantDirectory.from_file(tenants_file), url + "/token", token_http
            )
            upstream = Upstream(
                url, clock, GeminiClient(http, url), credentials, tenants, token_http
            )
            client = VertexClient(http, LOCATION, base_url=url)
            storage = StorageClient(http, base_url=url, fence=fence.check)
            target = VertexTarget(PROJECT, LOCATION, BUCKET, "staging")
            provider = VertexProvider(client, storage, target)
            yield Vertex(upstream, client, storage, target, provider)
