"""A tenant that names a service account: the worker mints its tokens with the platform's
identity at the emulated IAM Credentials API, and explains IAM's refusals.

The tenants file names `impersonate_service_account` instead of a credentials file
(core.security.tenants refuses bad shapes and both at once); CredentialSource then hands
out tokens of that account, which act as the account on the emulated Vertex AI.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.errors import CredentialError, Reason, UpstreamRetryable
from core.redis.client import Redis
from core.redis.keys import Keys
from core.security.authorized_user import AuthorizedUser
from core.security.credential_store import CredentialStore, StoredCredential, seal
from core.security.credentials import CredentialSource
from core.security.crypto import KeyRing
from core.security.impersonation import IMPERSONATION_ROLE, Impersonator
from core.security.tenants import TenantDirectory, load_tenants
from devstack.tenants import LocalTenant, platform_identity, write_tenant_files
from emulator import EmulatorConfig, load_grants, running_emulator
from emulator.config import load_service_accounts
from tests.clocks import FakeClock

pytestmark = pytest.mark.timeout(30)
SA = "tuning-sa@team-s-project.iam.gserviceaccount.com"
LOCKED_SA = "locked-sa@team-l-project.iam.gserviceaccount.com"
GONE_SA = "gone-sa@team-g-project.iam.gserviceaccount.com"
JOBS = "/v1/projects/team-s-project/locations/us-central1/tuningJobs"
JOB = {
    "baseModel": "gemini-2.5-flash",
    "supervisedTuningSpec": {"trainingDatasetUri": "gs://team-s-tuning/train.jsonl"},
}


@dataclass
class Minting:
    url: str
    credentials: CredentialSource
    http: httpx.AsyncClient

    async def iam_calls(self) -> int:
        stats = (await self.http.get("/_emulator/stats")).json()
        return int(stats["requests"].get("POST serviceAccounts.generateAccessToken", 0))


def tenants() -> list[LocalTenant]:
    return [
        LocalTenant("team-s", service_account=SA),
        LocalTenant("team-l", service_account=LOCKED_SA, platform_may_impersonate=False),
        LocalTenant("team-a"),
    ]


@asynccontextmanager
async def minting(
    tmp_path: Path,
    *,
    platform_file: str = "platform-oauth.json",
    forget: str = "",
    store: CredentialStore | None = None,
    keys: KeyRing | None = None,
) -> AsyncIterator[Minting]:
    """The emulator with the tenants' grants and service accounts (but `forget`), and a
    CredentialSource impersonating with the platform's credential `platform_file` (and
    reading `store` with `keys`)."""
    tenants_file, grants_file = write_tenant_files(tmp_path, tenants())
    accounts = [a for a in load_service_accounts(grants_file) if a.email != forget]
    config = EmulatorConfig(grants=load_grants(grants_file), service_accounts=tuple(accounts))
    async with (
        running_emulator(config, FakeClock()) as url,
        httpx.AsyncClient(base_url=url, timeout=10.0) as http,
    ):
        with httpx.Client(timeout=10.0) as token_http:
            platform = str(tmp_path / platform_file)
            credentials = CredentialSource(
                TenantDirectory.from_file(tenants_file),
                url + "/token",
                token_http,
                store=store,
                keys=keys,
                impersonator=Impersonator.from_settings(platform, url + "/token", url),
            )
            yield Minting(url, credentials, http)


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[Minting]:
    async with minting(tmp_path) as running:
        yield running


async def test_the_tenants_token_acts_as_its_service_account(upstream: Minting) -> None:
    headers = await upstream.credentials.for_tenant("team-s").headers()
    created = await upstream.http.post(JOBS, json=JOB, headers=headers)
    assert created.status_code == 200, created.text
    jobs = (await upstream.http.get("/_emulator/vertex/tuningJobs")).json()["tuningJobs"]
    assert [job["owner"] for job in jobs] == [SA]
    assert await upstream.iam_calls() == 1


async def test_a_refusal_names_the_account_and_the_role_and_is_asked_again(
    upstream: Minting,
) -> None:
    for calls in (1, 2):  # not remembered: the grant is fixed on Google's side
        with pytest.raises(CredentialError) as refused:
            await upstream.credentials.for_tenant("team-l").headers()
        assert refused.value.reason == Reason.IMPERSONATION_REFUSED
        assert LOCKED_SA in refused.value.message
        assert IMPERSONATION_ROLE in refused.value.message
        assert await upstream.iam_calls() == calls


async def test_iam_unavailable_is_retried_later(upstream: Minting) -> None:
    rule = {"route": "serviceAccounts.generateAccessToken", "status": 503}
    assert (await upstream.http.post("/_emulator/faults", json={"rules": [rule]})).is_success
    with pytest.raises(UpstreamRetryable) as unavailable:
        await upstream.credentials.for_tenant("team-s").headers()
    assert unavailable.value.reason == Reason.TOKEN_ENDPOINT_UNAVAILABLE
    assert "authorization" in await upstream.credentials.for_tenant("team-s").headers()


async def test_an_unknown_account_is_refused_as_not_existing(tmp_path: Path) -> None:
    async with minting(tmp_path, forget=SA) as running:
        with pytest.raises(CredentialError) as refused:
            await running.credentials.for_tenant("team-s").headers()
    assert refused.value.reason == Reason.IMPERSONATION_REFUSED
    assert "does not exist" in refused.value.message and SA in refused.value.message


async def test_a_platform_identity_the_token_endpoint_refuses_is_named(tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.json"  # a credential the emulator never granted
    stranger.write_text(json.dumps(LocalTenant("stranger").authorized_user()))
    async with minting(tmp_path, platform_file=stranger.name) as running:
        with pytest.raises(CredentialError) as refused:
            await running.credentials.for_tenant("team-s").headers()
        assert await running.iam_calls() == 0
    assert refused.value.reason == Reason.CREDENTIAL_REFUSED
    assert "platform" in refused.value.message and SA in refused.value.message


async def test_the_service_account_wins_over_a_credential_stored_before(
    tmp_path: Path, redis: Redis, prefix: str
) -> None:
    ring = KeyRing([("k1", secrets.token_bytes(32))])
    store = CredentialStore(redis, Keys(prefix))
    old = AuthorizedUser.from_info(LocalTenant("old").authorized_user(), "test")  # never granted
    sealed = seal(ring, "team-s", old)
    await store.put(StoredCredential("team-s", sealed, old.client_id, (), "", 0.0, 0.0))
    async with minting(tmp_path, store=store, keys=ring) as running:
        headers = await running.credentials.for_tenant("team-s").headers()
        listed = await running.http.get(JOBS, headers=headers)
        assert listed.status_code == 200, listed.text
        assert await running.iam_calls() == 1


async def test_without_a_platform_identity_the_job_is_told_so(tmp_path: Path) -> None:
    tenants_file, _ = write_tenant_files(tmp_path, tenants())
    with httpx.Client() as token_http:
        source = CredentialSource(TenantDirectory.from_file(tenants_file), "", token_http)
        with pytest.raises(CredentialError) as missing:
            await source.for_tenant("team-s").headers()
    assert missing.value.reason == Reason.CREDENTIAL_MISSING
    assert SA in missing.value.message


def test_devstack_names_the_account_instead_of_a_credentials_file(tmp_path: Path) -> None:
    tenants_file, grants_file = write_tenant_files(tmp_path, tenants())
    loaded = load_tenants(tenants_file)
    assert loaded["team-s"].impersonate_service_account == SA
    assert loaded["team-s"].credentials_file is None
    assert not (tmp_path / "team-s-oauth.json").exists()
    accounts = {a.email: a.impersonators for a in load_service_accounts(grants_file)}
    assert accounts == {SA: (platform_identity_id(grants_file),), LOCKED_SA: ()}


def platform_identity_id(grants_file: Path) -> str:
    """The platform's client id in the grants file (its grant is the last one)."""
    assert platform_identity().id == "platform"
    return str(json.loads(grants_file.read_text())["grants"][-1]["client_id"])
