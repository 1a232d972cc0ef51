"""Fixtures for the upstream client: the emulator over real HTTP and tenants' credentials."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.security.credentials import CredentialSource
from core.security.tenants import TenantDirectory
from core.security.token_source import TokenSource
from core.upstream_http import open_session
from devstack.tenants import LocalTenant, write_tenant_files
from emulator import EmulatorConfig, load_grants, running_emulator
from tests.clocks import FakeClock
from tests.harness import local_tenants
from worker import fence
from worker.fence import Fence
from worker.gemini import GeminiClient


def fenced() -> AbstractContextManager[Fence]:
    """Upstream side effects allowed, as inside a visit whose lease never runs out."""
    return fence.holding(Fence("test", math.inf))


@dataclass
class Upstream:
    url: str
    clock: FakeClock
    client: GeminiClient
    credentials: CredentialSource
    tenants: dict[str, LocalTenant]
    token_http: httpx.Client

    def auth(self, tenant: str = "team-a") -> TokenSource:
        return self.credentials.for_tenant(tenant)

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url) as http:
            answer: dict[str, Any] = (await http.get("/_emulator/stats")).json()
            return answer

    async def requests(self, route: str) -> int:
        return sum(n for k, n in (await self.stats())["requests"].items() if k.endswith(route))

    async def faults(self, *rules: dict[str, Any]) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            (await http.post("/_emulator/faults", json={"rules": list(rules)})).raise_for_status()


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[Upstream]:
    tenants = local_tenants()
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
            client = GeminiClient(http, url)
            yield Upstream(url, clock, client, credentials, tenants, token_http)
