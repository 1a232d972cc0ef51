"""Base models (``models.list``, ``models.get``) and the tuned-model cancel, judged by Google's
generated clients over REST (``google-ai-generativelanguage``, v1beta and v1).

The tuning tutorial's first step lists the models and keeps those that support
``createTunedModel``; the last test tunes one of them. Cancel is bound under ``/v1/`` only:
the v1 client posts it there, and the v1beta client has no binding for a tuned model's
operation at all (``emulator.api_operations``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import google.oauth2.credentials
import httpx
import pytest
from google.ai import generativelanguage_v1 as glm_v1
from google.ai import generativelanguage_v1beta as glm
from google.ai.generativelanguage_v1.services.model_service.transports.rest import (
    ModelServiceRestTransport as V1RestTransport,
)
from google.ai.generativelanguage_v1beta.services.model_service.transports.rest import (
    ModelServiceRestTransport,
)
from google.api_core import exceptions

from emulator import EmulatorConfig, running_emulator
from tests.clocks import FakeClock
from tests.emulator.helpers import GRANTS, OWNER, bearer, create_model, emulator_stats
from tests.emulator.test_google_client import call, rpc_status, tuned_model

TUNABLE = ["models/gemini-1.0-pro-001", "models/gemini-1.5-flash-001-tuning"]
CATALOG = [
    "models/gemini-1.0-pro-001",
    "models/gemini-1.5-flash",
    "models/gemini-1.5-flash-001-tuning",
    "models/text-embedding-004",
]


@dataclass
class Clients:
    """Google's v1beta and v1 ModelService clients for one emulator, and an httpx client."""

    v1beta: glm.ModelServiceClient
    v1: glm_v1.ModelServiceClient
    http: httpx.AsyncClient
    headers: dict[str, str]
    clock: FakeClock


@pytest.fixture
async def clients(clock: FakeClock) -> AsyncIterator[Clients]:
    async with (
        running_emulator(EmulatorConfig(grants=GRANTS), clock) as url,
        httpx.AsyncClient(base_url=url, timeout=10.0) as http,
    ):
        headers = await bearer(http, OWNER)
        credentials = google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
            token=headers["Authorization"].removeprefix("Bearer ")
        )
        host = url.removeprefix("http://")
        v1beta = ModelServiceRestTransport(host=host, credentials=credentials, url_scheme="http")
        v1 = V1RestTransport(host=host, credentials=credentials, url_scheme="http")
        yield Clients(
            glm.ModelServiceClient(transport=v1beta),
            glm_v1.ModelServiceClient(transport=v1),
            http,
            headers,
            clock,
        )


async def test_list_models_pages_through_the_catalog(clients: Clients) -> None:
    pager = await call(clients.v1beta.list_models, page_size=3)
    pages = await call(lambda: [[m.name for m in page.models] for page in pager.pages])

    assert pages == [CATALOG[:3], CATALOG[3:]]
    assert (await emulator_stats(clients.http))["requests"]["GET models.list"] == 2


async def test_list_models_without_a_page_size_is_one_page(clients: Clients) -> None:
    response = await clients.http.get("/v1beta/models", headers=clients.headers)

    assert response.status_code == 200
    assert [m["name"] for m in response.json()["models"]] == CATALOG
    assert "nextPageToken" not in response.json()


async def test_the_tutorial_filter_finds_the_tunable_models(clients: Clients) -> None:
    pager = await call(clients.v1beta.list_models, page_size=1)

    tunable = await call(
        lambda: [m.name for m in pager if "createTunedModel" in m.supported_generation_methods]
    )

    assert tunable == TUNABLE


async def test_get_model_returns_the_tuning_base_model(clients: Clients) -> None:
    model = await call(clients.v1beta.get_model, name="models/gemini-1.5-flash-001-tuning")

    assert model.version == "001"
    assert (model.input_token_limit, model.output_token_limit) == (16384, 8192)
    assert list(model.supported_generation_methods) == [
        "generateContent",
        "countTokens",
        "createTunedModel",
    ]
    assert (model.temperature, model.top_k) == (1.0, 64)
    assert model.top_p == pytest.approx(0.95)  # a float32 on the wire
    assert not model.base_model_id


async def test_get_model_json_omits_defaults_and_unset_optionals(clients: Clients) -> None:
    response = await clients.http.get("/v1beta/models/text-embedding-004", headers=clients.headers)

    assert response.json() == {
        "name": "models/text-embedding-004",
        "version": "004",
        "displayName": "Text Embedding 004",
        "description": "Obtain a distributed representation of a text.",
        "inputTokenLimit": 2048,
        "outputTokenLimit": 1,
        "supportedGenerationMethods": ["embedContent"],
    }


async def test_a_model_without_top_k_has_no_top_k(clients: Clients) -> None:
    model = await call(clients.v1beta.get_model, name="models/gemini-1.0-pro-001")

    assert "temperature" in model
    assert "top_k" not in model  # optional field, unset: no top-k sampling


async def test_the_v1_client_gets_and_lists_models(clients: Clients) -> None:
    model = await call(clients.v1.get_model, name="models/gemini-1.5-flash")
    pager = await call(clients.v1.list_models)
    names = await call(lambda: [m.name for m in pager])

    assert model.display_name == "Gemini 1.5 Flash"
    assert names == CATALOG


async def test_an_unknown_model_is_not_found(clients: Clients) -> None:
    with pytest.raises(exceptions.NotFound) as caught:
        await call(clients.v1beta.get_model, name="models/no-such-model")

    assert rpc_status(caught.value) == "NOT_FOUND"
    assert "models/no-such-model" in caught.value.message


async def test_a_listed_tunable_model_can_be_tuned(clients: Clients) -> None:
    pager = await call(clients.v1beta.list_models)
    base = await call(
        lambda: next(m.name for m in pager if "createTunedModel" in m.supported_generation_methods)
    )
    request = tuned_model()
    request.base_model = base

    operation = await call(clients.v1beta.create_tuned_model, tuned_model=request)
    clients.clock.advance(19.0)
    model = await call(operation.result, timeout=30)

    assert model.base_model == base
    assert model.state == glm.TunedModel.State.ACTIVE


async def test_the_v1_client_cancels_a_tuning_operation(clients: Clients) -> None:
    operation = await create_model(clients.http, clients.headers, "cancelled")

    await call(clients.v1.cancel_operation, {"name": operation["name"]})
    polled = await call(clients.v1beta.get_operation, {"name": operation["name"]})

    assert polled.done
    assert polled.error.code == 1  # CANCELLED
    stats = await emulator_stats(clients.http)
    assert stats["requests"]["POST operations.cancel"] == 1


async def test_the_v1beta_client_has_no_binding_for_a_tuned_model_cancel(
    clients: Clients,
) -> None:
    # Its only CancelOperation binding is /v1beta/{name=batches/*}:cancel, so the request
    # never leaves the client; the emulator's v1beta path 404s (test_operations.py).
    operation = await create_model(clients.http, clients.headers, "kept")

    with pytest.raises(ValueError, match=r"/v1beta/\{name=batches/\*\}:cancel"):
        await call(clients.v1beta.cancel_operation, {"name": operation["name"]})

    assert "POST operations.cancel" not in (await emulator_stats(clients.http))["requests"]
