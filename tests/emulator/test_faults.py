"""Fault injection and request statistics (the ``/_emulator/`` endpoints)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.emulator.helpers import create_model, detail, error_of, model_body


async def _inject(http: httpx.AsyncClient, *rules: dict[str, Any]) -> None:
    response = await http.post("/_emulator/faults", json={"rules": list(rules)})
    assert response.status_code == 200, response.text


async def _stats(http: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await http.get("/_emulator/stats")).json()
    return body


async def _create(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.post(
        "/v1beta/tunedModels", params={"tunedModelId": "flaky"}, json=model_body(), headers=headers
    )


async def test_503_for_the_given_number_of_times_then_success(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await _inject(http, {"route": "tunedModels.create", "status": 503, "times": 2})

    statuses = [(await _create(http, owner)).status_code for _ in range(3)]
    first_error = error_of(await _create(http, owner))

    assert statuses == [503, 503, 200]
    assert first_error["status"] == "ALREADY_EXISTS"  # the third create went through
    stats = await _stats(http)
    assert stats["requests"]["POST tunedModels.create"] == 4
    assert stats["creates"] == 1


async def test_503_uses_the_unavailable_envelope(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await _inject(http, {"route": "tunedModels.create", "status": 503})

    error = error_of(await _create(http, owner))

    assert error["code"] == 503
    assert error["status"] == "UNAVAILABLE"
    assert (await _stats(http))["models"] == 0


async def test_429_carries_quota_failure_help_and_retry_info(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    operation = await create_model(http, owner, "polled")
    await _inject(http, {"route": "operations.get", "status": 429, "retry_delay_s": 30})

    limited = await http.get(f"/v1beta/{operation['name']}", headers=owner)
    retried = await http.get(f"/v1beta/{operation['name']}", headers=owner)

    assert limited.status_code == 429
    error = error_of(limited)
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert detail(error, "google.rpc.RetryInfo")["retryDelay"] == "30s"
    assert detail(error, "google.rpc.QuotaFailure")["violations"]
    assert detail(error, "google.rpc.Help")["links"]
    assert retried.status_code == 200


async def test_after_creates_the_model_but_answers_the_error(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await _inject(http, {"route": "tunedModels.create", "status": 503, "after": True})

    lost = await _create(http, owner)
    model = await http.get("/v1beta/tunedModels/flaky", headers=owner)
    retry = await _create(http, owner)

    assert lost.status_code == 503
    assert model.status_code == 200
    assert model.json()["state"] == "CREATING"
    assert retry.status_code == 409
    assert (await _stats(http))["creates"] == 1


@pytest.mark.parametrize(("status", "name"), [(500, "INTERNAL"), (504, "DEADLINE_EXCEEDED")])
async def test_other_statuses_use_their_canonical_names(
    http: httpx.AsyncClient, owner: dict[str, str], status: int, name: str
) -> None:
    await _inject(http, {"route": "tunedModels.list", "status": status})

    response = await http.get("/v1beta/tunedModels", headers=owner)

    assert response.status_code == status
    assert error_of(response)["status"] == name


async def test_faults_apply_only_to_their_route(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await _inject(http, {"route": "tunedModels.delete", "status": 503})

    listing = await http.get("/v1beta/tunedModels", headers=owner)

    assert listing.status_code == 200


async def test_clearing_faults_restores_normal_answers(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await _inject(http, {"route": "tunedModels.list", "status": 500, "times": 5})

    cleared = await http.delete("/_emulator/faults")
    listing = await http.get("/v1beta/tunedModels", headers=owner)

    assert cleared.status_code == 200
    assert listing.status_code == 200


async def test_a_fault_on_the_token_endpoint(http: httpx.AsyncClient) -> None:
    await _inject(http, {"route": "oauth.token", "status": 503})

    response = await http.post("/token", data={"grant_type": "refresh_token"})

    assert response.status_code == 503


@pytest.mark.parametrize(
    "rule",
    [
        {"route": "no.such.route", "status": 503},
        {"route": "tunedModels.get", "status": 200},
        {"route": "tunedModels.get", "status": 503, "times": 0},
    ],
)
async def test_malformed_rules_are_400(http: httpx.AsyncClient, rule: dict[str, Any]) -> None:
    response = await http.post("/_emulator/faults", json={"rules": [rule]})

    assert response.status_code == 400


async def test_stats_count_requests_per_route(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    operation = await create_model(http, owner, "counted")
    await http.get("/v1beta/tunedModels/counted", headers=owner)
    await http.get(f"/v1/{operation['name']}", headers=owner)
    await http.get(f"/v1beta/{operation['name']}", headers=owner)
    await http.get("/v1beta/tunedModels/missing", headers=owner)
    await http.get("/not/a/route")

    stats = await _stats(http)

    assert stats == {
        "requests": {
            "GET operations.get": 2,
            "GET tunedModels.get": 2,
            "POST oauth.token": 1,
            "POST tunedModels.create": 1,
        },
        "models": 1,
        "creates": 1,
        "user_projects": {},
        "tokens_issued": 1,
        "rate_limit": {"rps": 0, "admitted": 5, "refused": 0},
    }
