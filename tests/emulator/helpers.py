"""Helpers for the emulator tests: grants, request bodies."""

from __future__ import annotations

from typing import Any

import httpx

from emulator import Grant

AUTH = "https://www.googleapis.com/auth/"
TUNING = AUTH + "generative-language.tuning"
TUNING_READONLY = AUTH + "generative-language.tuning.readonly"
CLOUD_PLATFORM = AUTH + "cloud-platform"

OWNER = Grant("client-a", "secret-a", "refresh-a", (TUNING,))
OTHER = Grant("client-b", "secret-b", "refresh-b", (TUNING,))
READER = Grant("client-r", "secret-r", "refresh-r", (TUNING_READONLY,))
CLOUD = Grant("client-c", "secret-c", "refresh-c", (CLOUD_PLATFORM,))
GRANTS = (OWNER, OTHER, READER, CLOUD)

BASE_MODEL = "models/gemini-1.5-flash-001-tuning"


def token_form(grant: Grant) -> dict[str, str]:
    """What google-auth posts to refresh this grant's credentials."""
    return {
        "grant_type": "refresh_token",
        "client_id": grant.client_id,
        "client_secret": grant.client_secret,
        "refresh_token": grant.refresh_token,
    }


async def bearer(http: httpx.AsyncClient, grant: Grant) -> dict[str, str]:
    """Exchange the grant at ``/token`` and return the Authorization header."""
    response = await http.post("/token", data=token_form(grant))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def model_body(
    examples: int = 15,
    epochs: int | None = 5,
    batch_size: int | None = 2,
    display_name: str = "number generator model",
    **extra: Any,
) -> dict[str, Any]:
    """A TunedModel create body with ``examples`` input/output pairs."""
    hyper: dict[str, Any] = {}
    if epochs is not None:
        hyper["epochCount"] = epochs
    if batch_size is not None:
        hyper["batchSize"] = batch_size
    pairs = [{"textInput": str(n), "output": str(n + 1)} for n in range(examples)]
    body: dict[str, Any] = {
        "baseModel": BASE_MODEL,
        "displayName": display_name,
        "tuningTask": {"hyperparameters": hyper, "trainingData": {"examples": {"examples": pairs}}},
    }
    return body | extra


async def create_model(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    model_id: str | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create a tuned model (asserting success) and return the Operation."""
    params = {"tunedModelId": model_id} if model_id else {}
    response = await http.post(
        "/v1beta/tunedModels", params=params, json=body or model_body(), headers=headers
    )
    assert response.status_code == 200, response.text
    operation: dict[str, Any] = response.json()
    return operation


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an error envelope."""
    envelope = response.json()
    assert set(envelope) == {"error"}
    error: dict[str, Any] = envelope["error"]
    return error


def detail(error: dict[str, Any], type_name: str) -> dict[str, Any]:
    """The one detail of ``error`` with ``@type`` ending in ``type_name``."""
    found = [d for d in error.get("details", []) if d["@type"].endswith("/" + type_name)]
    assert len(found) == 1, error
    only: dict[str, Any] = found[0]
    return only


async def inject_faults(http: httpx.AsyncClient, *rules: dict[str, Any]) -> None:
    """Queue fault rules (asserting they were accepted)."""
    response = await http.post("/_emulator/faults", json={"rules": list(rules)})
    assert response.status_code == 200, response.text


async def emulator_stats(http: httpx.AsyncClient) -> dict[str, Any]:
    """The body of ``GET /_emulator/stats``."""
    response = await http.get("/_emulator/stats")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
