"""The token endpoint, bearer checks and scope checks."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from google.auth import exceptions as auth_exceptions
from google.oauth2.credentials import Credentials

from core.security.google_transport import HttpxRequest
from tests.clocks import FakeClock
from tests.emulator.helpers import (
    CLOUD,
    OWNER,
    READER,
    TUNING,
    bearer,
    create_model,
    detail,
    error_of,
    model_body,
    token_form,
)

REALM = 'Bearer realm="https://accounts.google.com/"'


async def test_token_exchange_answers_a_bearer_token(http: httpx.AsyncClient) -> None:
    response = await http.post("/token", data=token_form(OWNER))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == TUNING
    assert body["access_token"]


async def test_each_exchange_issues_a_new_token(http: httpx.AsyncClient) -> None:
    first = await http.post("/token", data=token_form(OWNER))
    second = await http.post("/token", data=token_form(OWNER))

    assert first.json()["access_token"] != second.json()["access_token"]


@pytest.mark.parametrize(
    "change",
    [{"refresh_token": "no-such-token"}, {"client_secret": "wrong"}, {"client_id": "client-b"}],
)
async def test_bad_grant_is_invalid_grant(http: httpx.AsyncClient, change: dict[str, str]) -> None:
    response = await http.post("/token", data=token_form(OWNER) | change)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Bad Request"}


async def test_other_grant_type_is_unsupported(http: httpx.AsyncClient) -> None:
    form = token_form(OWNER) | {"grant_type": "password"}

    response = await http.post("/token", data=form)

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_scope_beyond_the_grant_is_invalid_scope(http: httpx.AsyncClient) -> None:
    form = token_form(READER) | {"scope": TUNING}

    response = await http.post("/token", data=form)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_missing_credentials_is_401_credentials_missing(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1beta/tunedModels")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == REALM
    error = error_of(response)
    assert error["code"] == 401
    assert error["status"] == "UNAUTHENTICATED"
    info = detail(error, "google.rpc.ErrorInfo")
    assert info["reason"] == "CREDENTIALS_MISSING"
    assert info["domain"] == "googleapis.com"
    assert info["metadata"]["service"] == "generativelanguage.googleapis.com"


async def test_unknown_token_is_401(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/v1beta/tunedModels", headers={"Authorization": "Bearer ya29.made-up"}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(REALM)
    reason = detail(error_of(response), "google.rpc.ErrorInfo")["reason"]
    assert reason == "CREDENTIALS_MISSING"


async def test_token_expires_after_its_ttl(http: httpx.AsyncClient, clock: FakeClock) -> None:
    headers = await bearer(http, OWNER)
    clock.advance(3599)
    assert (await http.get("/v1beta/tunedModels", headers=headers)).status_code == 200

    clock.advance(1)
    response = await http.get("/v1beta/tunedModels", headers=headers)

    assert response.status_code == 401
    assert error_of(response)["status"] == "UNAUTHENTICATED"
    assert detail(error_of(response), "google.rpc.ErrorInfo")["reason"] == "ACCESS_TOKEN_EXPIRED"


async def test_create_without_tuning_scope_is_403(http: httpx.AsyncClient) -> None:
    headers = await bearer(http, READER)

    response = await http.post("/v1beta/tunedModels", json=model_body(), headers=headers)

    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(REALM + ', error="insufficient_scope", scope="')
    assert TUNING in challenge
    error = error_of(response)
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"] == "Request had insufficient authentication scopes."
    info = detail(error, "google.rpc.ErrorInfo")
    assert info["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert info["metadata"] == {
        "service": "generativelanguage.googleapis.com",
        "method": "google.ai.generativelanguage.v1beta.ModelService.CreateTunedModel",
    }
    assert (await http.get("/_emulator/stats")).json()["creates"] == 0


async def test_readonly_scope_may_read_but_not_delete(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    reader = await bearer(http, READER)

    listing = await http.get("/v1beta/tunedModels", headers=reader)
    deleting = await http.delete("/v1beta/tunedModels/anything", headers=reader)

    assert listing.status_code == 200
    assert deleting.status_code == 403
    info = detail(error_of(deleting), "google.rpc.ErrorInfo")
    assert info["metadata"]["method"].endswith("ModelService.DeleteTunedModel")


async def test_cloud_platform_scope_may_create(http: httpx.AsyncClient) -> None:
    headers = await bearer(http, CLOUD)

    operation = await create_model(http, headers, "cloud-model")

    assert operation["metadata"]["tunedModel"] == "tunedModels/cloud-model"


def _credentials(emulator_url: str, refresh_token: str) -> Credentials:
    # google-auth's constructor has no annotations.
    return Credentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=refresh_token,
        client_id=OWNER.client_id,
        client_secret=OWNER.client_secret,
        token_uri=f"{emulator_url}/token",
    )


async def test_google_auth_refresh_gets_a_usable_token(
    http: httpx.AsyncClient, emulator_url: str
) -> None:
    credentials = _credentials(emulator_url, OWNER.refresh_token)

    with HttpxRequest.session(timeout_s=10.0) as request:
        await asyncio.to_thread(credentials.refresh, request)
    response = await http.get(
        "/v1beta/tunedModels", headers={"Authorization": f"Bearer {credentials.token}"}
    )

    assert response.status_code == 200
    assert credentials.expiry is not None


async def test_google_auth_reports_invalid_grant(emulator_url: str) -> None:
    credentials = _credentials(emulator_url, "revoked-token")

    with (
        HttpxRequest.session(timeout_s=10.0) as request,
        pytest.raises(auth_exceptions.RefreshError, match="invalid_grant"),
    ):
        await asyncio.to_thread(credentials.refresh, request)
