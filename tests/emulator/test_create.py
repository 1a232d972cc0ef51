"""Creating tuned models: the Operation answer, validation, ids and defaults."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.emulator.helpers import (
    BASE_MODEL,
    create_model,
    detail,
    error_of,
    model_body,
)

METADATA_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata"


async def _create(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    body: dict[str, Any],
    model_id: str | None = "my-model",
) -> httpx.Response:
    params = {"tunedModelId": model_id} if model_id is not None else {}
    return await http.post("/v1beta/tunedModels", params=params, json=body, headers=headers)


async def test_create_answers_a_running_operation(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    operation = await create_model(http, owner, "number-generator")

    assert set(operation) == {"name", "metadata"}
    assert re.fullmatch(r"tunedModels/number-generator/operations/[a-z0-9]{12}", operation["name"])
    assert operation["metadata"] == {
        "@type": METADATA_TYPE,
        "totalSteps": 38,
        "tunedModel": "tunedModels/number-generator",
    }


async def test_created_model_is_readable_as_creating(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await create_model(http, owner, "number-generator")

    response = await http.get("/v1beta/tunedModels/number-generator", headers=owner)

    assert response.status_code == 200
    model = response.json()
    assert model["name"] == "tunedModels/number-generator"
    assert model["baseModel"] == BASE_MODEL
    assert model["displayName"] == "number generator model"
    assert model["state"] == "CREATING"
    assert model["createTime"] == model["updateTime"] == "2026-11-21T13:40:00Z"
    assert model["tuningTask"]["startTime"] == "2026-11-21T13:40:00Z"
    assert "completeTime" not in model["tuningTask"]
    assert "snapshots" not in model["tuningTask"]


async def test_defaults_are_filled_in(http: httpx.AsyncClient, owner: dict[str, str]) -> None:
    body = model_body(epochs=None, batch_size=None)
    await create_model(http, owner, "defaults", body)

    model = (await http.get("/v1beta/tunedModels/defaults", headers=owner)).json()

    assert model["tuningTask"]["hyperparameters"] == {
        "epochCount": 5,
        "batchSize": 4,
        "learningRate": 0.001,
    }
    assert (model["temperature"], model["topP"], model["topK"]) == (1.0, 0.95, 64)


async def test_learning_rate_multiplier_replaces_the_default_rate(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    body = model_body()
    body["tuningTask"]["hyperparameters"]["learningRateMultiplier"] = 0.5
    await create_model(http, owner, "multiplied", body)

    model = (await http.get("/v1beta/tunedModels/multiplied", headers=owner)).json()

    assert model["tuningTask"]["hyperparameters"] == {
        "epochCount": 5,
        "batchSize": 2,
        "learningRateMultiplier": 0.5,
    }


async def test_training_data_is_never_returned(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    operation = await create_model(http, owner, "secret-data")

    model = await http.get("/v1beta/tunedModels/secret-data", headers=owner)
    listing = await http.get("/v1beta/tunedModels", headers=owner)
    polled = await http.get(f"/v1beta/{operation['name']}", headers=owner)

    for response in (model, listing, polled):
        assert "trainingData" not in response.text
        assert "textInput" not in response.text


async def test_duplicate_id_is_409(http: httpx.AsyncClient, owner: dict[str, str]) -> None:
    await create_model(http, owner, "twice")

    response = await _create(http, owner, model_body(), "twice")

    assert response.status_code == 409
    error = error_of(response)
    assert error["status"] == "ALREADY_EXISTS"
    assert error["message"] == "Tuned model tunedModels/twice already exists."
    assert (await http.get("/_emulator/stats")).json()["creates"] == 1


@pytest.mark.parametrize("model_id", ["Upper", "1digit", "ends-", "has_underscore", "a" * 41])
async def test_invalid_id_is_400(
    http: httpx.AsyncClient, owner: dict[str, str], model_id: str
) -> None:
    response = await _create(http, owner, model_body(), model_id)

    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"
    assert (await http.get("/_emulator/stats")).json()["models"] == 0


@pytest.mark.parametrize("model_id", ["a", "a" * 40, "a-1-b"])
async def test_valid_ids_are_accepted(
    http: httpx.AsyncClient, owner: dict[str, str], model_id: str
) -> None:
    response = await _create(http, owner, model_body(), model_id)

    assert response.status_code == 200
    assert response.json()["metadata"]["tunedModel"] == f"tunedModels/{model_id}"


async def test_both_learning_rate_fields_is_400(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    body = model_body()
    body["tuningTask"]["hyperparameters"] |= {"learningRate": 0.01, "learningRateMultiplier": 1.0}

    response = await _create(http, owner, body)

    assert response.status_code == 400
    assert "learningRateMultiplier" in error_of(response)["message"]


async def test_missing_output_is_400_naming_the_example(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    body = model_body()
    del body["tuningTask"]["trainingData"]["examples"]["examples"][2]["output"]

    response = await _create(http, owner, body)

    assert response.status_code == 400
    error = error_of(response)
    assert "examples[2].output" in error["message"]
    violation = detail(error, "google.rpc.BadRequest")["fieldViolations"][0]
    assert violation["field"].endswith("examples[2].output")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"baseModel": ""}, "baseModel"),
        ({"displayName": "x" * 41}, "displayName"),
        ({"temperature": 1.5}, "temperature"),
        ({"tuningTask": {"trainingData": {"examples": {"examples": []}}}}, "examples"),
    ],
)
async def test_invalid_fields_are_400(
    http: httpx.AsyncClient, owner: dict[str, str], change: dict[str, Any], fragment: str
) -> None:
    response = await _create(http, owner, model_body() | change)

    assert response.status_code == 400
    assert fragment in error_of(response)["message"]


@pytest.mark.parametrize(("field", "value"), [("epochCount", 0), ("batchSize", -1)])
async def test_non_positive_hyperparameters_are_400(
    http: httpx.AsyncClient, owner: dict[str, str], field: str, value: int
) -> None:
    body = model_body()
    body["tuningTask"]["hyperparameters"][field] = value

    response = await _create(http, owner, body)

    assert response.status_code == 400
    assert field in error_of(response)["message"]


async def test_malformed_json_is_400(http: httpx.AsyncClient, owner: dict[str, str]) -> None:
    response = await http.post(
        "/v1beta/tunedModels",
        content=b"{not json",
        headers=owner | {"content-type": "application/json"},
    )

    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"


async def test_without_id_the_display_name_is_slugged(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    response = await _create(http, owner, model_body(display_name="Number Generator!"), None)

    name = response.json()["metadata"]["tunedModel"]
    assert re.fullmatch(r"tunedModels/number-generator-[a-z0-9]{12}", name)


async def test_without_id_or_display_name_the_id_starts_with_model(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    body = model_body()
    del body["displayName"]

    response = await _create(http, owner, body, None)

    assert re.fullmatch(
        r"tunedModels/model-[a-z0-9]{12}", response.json()["metadata"]["tunedModel"]
    )


async def test_generated_ids_fit_in_40_characters(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    body = model_body(display_name="a very long display name for a model!!")

    response = await _create(http, owner, body, None)

    model_id = response.json()["metadata"]["tunedModel"].removeprefix("tunedModels/")
    assert len(model_id) <= 40
    assert re.fullmatch(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?", model_id)


async def test_snake_case_and_null_input_is_accepted(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    pairs = [{"text_input": "1", "output": "2"}] * 4
    body = {
        "base_model": BASE_MODEL,
        "display_name": "snake",
        "description": None,
        "top_k": 10,
        "reader_project_numbers": [123456789012],
        "tuning_task": {
            "hyperparameters": {"epoch_count": 2, "batch_size": 1, "learning_rate": 0.01},
            "training_data": {"examples": {"examples": pairs}},
        },
    }

    response = await http.post(
        "/v1beta/tunedModels", params={"tuned_model_id": "snake"}, json=body, headers=owner
    )
    model = (await http.get("/v1beta/tunedModels/snake", headers=owner)).json()

    assert response.json()["metadata"]["totalSteps"] == 8
    assert model["displayName"] == "snake"
    assert "description" not in model  # null means default in proto3 JSON
    assert model["topK"] == 10
    assert model["readerProjectNumbers"] == ["123456789012"]
    assert model["tuningTask"]["hyperparameters"]["learningRate"] == 0.01
