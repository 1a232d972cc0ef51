"""``GET /_emulator/stats``: quota projects of authenticated requests and issued tokens."""

from __future__ import annotations

import httpx

from tests.emulator.helpers import OWNER, READER, create_model, emulator_stats, token_form

PROJECT = {"x-goog-user-project": "quota-project-a"}


async def test_user_projects_counts_authenticated_requests_per_header_value(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await create_model(http, owner, "billed")
    await http.get("/v1beta/tunedModels/billed", headers=owner | PROJECT)
    await http.get("/v1beta/tunedModels", headers=owner | PROJECT)
    await http.get("/v1beta/tunedModels", headers=owner | {"x-goog-user-project": "other"})
    await http.get("/v1beta/tunedModels/missing", headers=owner | PROJECT)  # 404, still counted

    stats = await emulator_stats(http)

    assert stats["user_projects"] == {"other": 1, "quota-project-a": 3}


async def test_user_projects_skips_requests_without_a_valid_token(
    http: httpx.AsyncClient,
) -> None:
    await http.get("/v1beta/tunedModels", headers=PROJECT)
    await http.get("/v1beta/tunedModels", headers=PROJECT | {"Authorization": "Bearer nope"})

    stats = await emulator_stats(http)

    assert stats["user_projects"] == {}
    assert stats["requests"]["GET tunedModels.list"] == 2


async def test_user_projects_counts_a_request_refused_for_its_scope(
    http: httpx.AsyncClient,
) -> None:
    token = (await http.post("/token", data=token_form(READER))).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"} | PROJECT

    refused = await http.post("/v1beta/tunedModels", json={}, headers=headers)

    assert refused.status_code == 403
    assert (await emulator_stats(http))["user_projects"] == {"quota-project-a": 1}


async def test_tokens_issued_counts_successful_exchanges_only(http: httpx.AsyncClient) -> None:
    for _ in range(3):
        await http.post("/token", data=token_form(OWNER))
    await http.post("/token", data=token_form(OWNER) | {"client_secret": "wrong"})
    await http.post("/token", data={"grant_type": "password"})

    stats = await emulator_stats(http)

    assert stats["tokens_issued"] == 3
    assert stats["requests"]["POST oauth.token"] == 5


async def test_fresh_emulator_reports_zeroes(http: httpx.AsyncClient) -> None:
    stats = await emulator_stats(http)

    assert stats == {
        "requests": {},
        "models": 0,
        "creates": 0,
        "user_projects": {},
        "tokens_issued": 0,
        "rate_limit": {"rps": 0, "admitted": 0, "refused": 0},
    }


async def test_without_a_rate_limit_every_api_request_is_admitted(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    for _ in range(25):
        await http.get("/v1beta/tunedModels", headers=owner)

    stats = await emulator_stats(http)

    assert stats["rate_limit"] == {"rps": 0, "admitted": 25, "refused": 0}
