"""google-auth's impersonated credentials judge the emulated IAM Credentials API.

google-auth builds the `generateAccessToken` request (its body, the source credential's
token) and parses the answer (`accessToken`, an `expireTime` it reads strictly); the
emulator has no code for it. The minted token must then work on the emulated Vertex AI and
Cloud Storage as the service account's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import httpx
import pytest
from google.auth import impersonated_credentials

from emulator import EmulatorConfig, Grant
from emulator.config import ServiceAccount
from tests.clocks import FakeClock
from tests.emulator.helpers import CLOUD, GRANTS, OWNER, bearer, detail, error_of

pytestmark = pytest.mark.timeout(30)
TUNER = "tuning-sa@team-project.iam.gserviceaccount.com"
LOCKED = "locked-sa@team-project.iam.gserviceaccount.com"
CHAINED = "chained-sa@team-project.iam.gserviceaccount.com"
MISSING = "no-such-sa@team-project.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
PARENT = "/v1/projects/team-project/locations/us-central1"


@pytest.fixture
def config() -> EmulatorConfig:
    """CLOUD may impersonate TUNER, TUNER may impersonate CHAINED; nobody LOCKED."""
    accounts = (
        ServiceAccount(TUNER, (CLOUD.client_id,)),
        ServiceAccount(LOCKED, ()),
        ServiceAccount(CHAINED, (TUNER,)),
    )
    return EmulatorConfig(grants=GRANTS, service_accounts=accounts)


def impersonating(
    emulator_url: str, target: str, source: Grant = CLOUD, delegates: Sequence[str] = ()
) -> impersonated_credentials.Credentials:
    """google-auth's impersonated credentials of `target`, from `source`'s refresh token."""
    user = google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=source.refresh_token,
        client_id=source.client_id,
        client_secret=source.client_secret,
        token_uri=emulator_url + "/token",
    )
    url = f"{emulator_url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
    return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=user,
        target_principal=target,
        target_scopes=[CLOUD_PLATFORM],
        delegates=[f"projects/-/serviceAccounts/{d}" for d in delegates] or None,
        lifetime=3600,
        iam_endpoint_override=url,
    )


async def refreshed(credentials: impersonated_credentials.Credentials) -> str:
    """Refresh `credentials` (google-auth blocks: on a thread); the minted token."""
    await asyncio.to_thread(credentials.refresh, google.auth.transport.requests.Request())
    return str(credentials.token)


def minting_body(**fields: Any) -> dict[str, Any]:
    return {"scope": [CLOUD_PLATFORM], "lifetime": "3600s"} | fields


async def test_a_minted_token_acts_as_the_service_account(
    emulator_url: str, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    credentials = impersonating(emulator_url, TUNER)
    token = await refreshed(credentials)
    assert credentials.expiry == datetime.fromtimestamp(clock() + 3600, UTC).replace(tzinfo=None)
    headers = {"Authorization": f"Bearer {token}"}

    upload = await http.post(
        "/upload/storage/v1/b/team-bucket/o",
        params={"uploadType": "media", "name": "train.jsonl"},
        content=b'{"contents": [{"role": "user", "parts": [{"text": "1"}]}, '
        b'{"role": "model", "parts": [{"text": "2"}]}]}\n' * 10,
        headers=headers,
    )
    assert upload.status_code == 200, upload.text
    job = {
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {"trainingDatasetUri": "gs://team-bucket/train.jsonl"},
    }
    created = await http.post(f"{PARENT}/tuningJobs", json=job, headers=headers)
    assert created.status_code == 200, created.text
    jobs = (await http.get("/_emulator/vertex/tuningJobs")).json()["tuningJobs"]
    assert [j["owner"] for j in jobs] == [TUNER]

    other = await http.get(f"/v1/{created.json()['name']}", headers=await bearer(http, CLOUD))
    assert other.status_code == 403  # the source's own token does not own the job


async def test_a_caller_without_the_role_is_denied_in_iams_words(
    emulator_url: str, http: httpx.AsyncClient
) -> None:
    with pytest.raises(google.auth.exceptions.RefreshError):
        await refreshed(impersonating(emulator_url, LOCKED))

    answer = await http.post(
        f"/v1/projects/-/serviceAccounts/{LOCKED}:generateAccessToken",
        json=minting_body(),
        headers=await bearer(http, CLOUD),
    )
    assert answer.status_code == 403
    error = error_of(answer)
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"] == (
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
    )
    assert detail(error, "google.rpc.ErrorInfo")["reason"] == "IAM_PERMISSION_DENIED"


async def test_an_unknown_account_is_not_found(emulator_url: str, http: httpx.AsyncClient) -> None:
    answer = await http.post(
        f"/v1/projects/-/serviceAccounts/{MISSING}:generateAccessToken",
        json=minting_body(),
        headers=await bearer(http, CLOUD),
    )
    assert answer.status_code == 404
    assert error_of(answer)["message"] == f"Not found; Gaia id not found for email {MISSING}"


async def test_the_callers_token_needs_the_cloud_platform_scope(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        f"/v1/projects/-/serviceAccounts/{TUNER}:generateAccessToken",
        json=minting_body(),
        headers=await bearer(http, OWNER),  # generative-language.tuning only
    )
    assert answer.status_code == 403
    reason = detail(error_of(answer), "google.rpc.ErrorInfo")["reason"]
    assert reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


async def test_a_delegation_chain_needs_every_link(emulator_url: str) -> None:
    chained = impersonating(emulator_url, CHAINED, delegates=[TUNER])
    assert (await refreshed(chained)).startswith("ya29.")
    with pytest.raises(google.auth.exceptions.RefreshError):
        await refreshed(impersonating(emulator_url, CHAINED))  # CLOUD itself may not


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (minting_body(scope=[]), "scope"),
        (minting_body(lifetime="3601s"), "lifetime"),
        (minting_body(lifetime="an hour"), "lifetime"),
    ],
)
async def test_a_bad_request_is_refused_before_the_account_is_looked_at(
    http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    answer = await http.post(
        f"/v1/projects/-/serviceAccounts/{MISSING}:generateAccessToken",
        json=body,
        headers=await bearer(http, CLOUD),
    )
    assert answer.status_code == 400
    violations = detail(error_of(answer), "google.rpc.BadRequest")["fieldViolations"]
    assert [v["field"] for v in violations] == [field]


async def test_a_minted_token_expires_on_the_emulators_clock(
    emulator_url: str, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    answer = await http.post(
        f"/v1/projects/-/serviceAccounts/{TUNER}:generateAccessToken",
        json=minting_body(lifetime="60s"),
        headers=await bearer(http, CLOUD),
    )
    assert answer.status_code == 200, answer.text
    headers = {"Authorization": f"Bearer {answer.json()['accessToken']}"}
    assert (await http.get(f"{PARENT}/tuningJobs", headers=headers)).status_code == 200
    clock.advance(61)
    expired = await http.get(f"{PARENT}/tuningJobs", headers=headers)
    assert expired.status_code == 401
    assert detail(error_of(expired), "google.rpc.ErrorInfo")["reason"] == "ACCESS_TOKEN_EXPIRED"
