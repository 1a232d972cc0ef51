"""The Vertex AI express-mode facade (service.vertex_express), judged by google-genai.

The SDK is used as its users use it, unmodified: `genai.Client(vertexai=True,
api_key=<platform token>, http_options=HttpOptions(base_url=<the facade>))`, its calls
run off the test's event loop (`call`), which serves the API. A dataset is uploaded
through the gRPC API; the SDK tunes on it, reads, lists and cancels jobs, and calls the
tuned model once training ends upstream (the emulator's clock moved). The refusals are
Google's JSON envelope with the HTTP status of their gRPC code, which the SDK raises as
`errors.APIError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from google import genai
from google.genai import errors, types

from core.security.tenants import TenantDirectory
from service.process import ApiServer, start_api
from tests.conftest import SystemFactory
from tests.harness import BASE_MODEL, VERTEX_TENANT, State, System
from tests.service.pki import Authority, Issued

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning"),
]
PREFIX = "projects/team-a/locations/global/tuningJobs/"
T = TypeVar("T")


@pytest.fixture
async def express(make_system: SystemFactory) -> AsyncIterator[System]:
    """Emulator and API with the facade on a free port; no worker until a test starts one."""
    async with make_system(express_listen="127.0.0.1:0", with_worker=False) as system:
        yield system


def client_of(
    system: System,
    tenant: str = "team-a",
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> genai.Client:
    """google-genai in Vertex AI express mode, the platform token as its API key (and
    `headers` sent with every request)."""
    base_url = f"http://127.0.0.1:{system.api.express_port}"
    return genai.Client(
        vertexai=True,
        api_key=token or system.tenants[tenant].token,
        http_options=types.HttpOptions(base_url=base_url, headers=headers),
    )


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking SDK call (httpx) off the event loop that serves the API."""
    return await asyncio.to_thread(function, *args, **kwargs)


def jsonl(count: int = 20) -> bytes:
    rows = [{"text_input": str(n), "output": str(n + 1)} for n in range(count)]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


async def tune(client: genai.Client, dataset: str, **config: Any) -> types.TuningJob:
    settings: dict[str, Any] = {
        "epoch_count": 2,
        "batch_size": 4,
        "tuned_model_display_name": "numbers",
    }
    return await call(
        client.tunings.tune,
        base_model=BASE_MODEL,
        training_dataset=types.TuningDataset(gcs_uri=dataset),
        config=types.CreateTuningJobConfig(**(settings | config)),
    )


def platform_name(job: types.TuningJob) -> str:
    assert job.name is not None
    return "tuningJobs/" + job.name.rpartition("/")[2]


async def test_the_sdk_tunes_lists_cancels_and_calls_the_tuned_model(express: System) -> None:
    dataset = await express.upload(jsonl())
    client = client_of(express)

    job = await tune(client, dataset.name, labels={"team": "numbers"})
    assert job.name is not None and job.name.startswith(PREFIX)
    assert job.state == types.JobState.JOB_STATE_QUEUED
    assert job.tuned_model_display_name == "numbers"
    assert job.supervised_tuning_spec is not None
    assert job.supervised_tuning_spec.training_dataset_uri == dataset.name
    hyper = job.supervised_tuning_spec.hyper_parameters
    assert hyper is not None and (hyper.epoch_count, hyper.batch_size) == (2, 4)
    assert (await express.get(platform_name(job))).dataset == dataset.name  # one job, both APIs

    read = await call(client.tunings.get, name=job.name)
    assert (read.name, read.state, read.labels) == (job.name, job.state, {"team": "numbers"})

    second = await tune(client, dataset.name)
    assert second.name is not None
    await call(client.tunings.cancel, name=second.name)
    cancelled = await call(client.tunings.get, name=second.name)
    assert cancelled.state in {
        types.JobState.JOB_STATE_CANCELLING,
        types.JobState.JOB_STATE_CANCELLED,
    }

    pager = await call(client.tunings.list, config=types.ListTuningJobsConfig(page_size=1))
    assert len(pager.page) == 1
    listed = await call(lambda: [j.name for j in pager])
    assert listed == [second.name, job.name]  # newest first, one page each

    await express.start_worker()
    done = await express.finish_training(platform_name(job))
    assert done.state == State.SUCCEEDED, done.error
    finished = await call(client.tunings.get, name=job.name)
    assert finished.state == types.JobState.JOB_STATE_SUCCEEDED
    assert finished.tuned_model is not None and finished.tuned_model.endpoint is not None
    assert finished.end_time is not None

    endpoint = finished.tuned_model.endpoint
    answer = await call(client.models.generate_content, model=endpoint, contents="3")
    assert answer.text
    chunks = await call(
        lambda: [
            c.text or ""
            for c in client.models.generate_content_stream(model=endpoint, contents="3")
        ]
    )
    assert "".join(chunks) == answer.text


async def test_a_vertex_tenant_tunes_through_the_facade_too(express: System) -> None:
    dataset = await express.upload(jsonl(), tenant=VERTEX_TENANT)
    client = client_of(express, VERTEX_TENANT)
    job = await call(
        client.tunings.tune,
        base_model="gemini-2.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=dataset.name),
        config=types.CreateTuningJobConfig(
            epoch_count=2, adapter_size=types.AdapterSize.ADAPTER_SIZE_FOUR
        ),
    )
    assert job.name is not None and job.name.startswith(f"projects/{VERTEX_TENANT}/")
    hyper = job.supervised_tuning_spec and job.supervised_tuning_spec.hyper_parameters
    assert hyper and hyper.adapter_size == types.AdapterSize.ADAPTER_SIZE_FOUR

    await express.start_worker()
    await express.finish_training(platform_name(job), tenant=VERTEX_TENANT)
    done = await call(client.tunings.get, name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.tuned_model is not None and done.tuned_model.checkpoints
    checkpoint = done.tuned_model.checkpoints[0].endpoint
    assert checkpoint is not None
    answer = await call(client.models.generate_content, model=checkpoint, contents="3")
    assert answer.text


async def test_an_unknown_token_is_unauthenticated(express: System) -> None:
    client = client_of(express, token="not-a-platform-token")
    with pytest.raises(errors.ClientError) as caught:
        await call(client.tunings.list)
    assert (caught.value.code, caught.value.status) == (401, "UNAUTHENTICATED")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{express.api.express_port}") as http:
        answer = await http.get("/v1beta1/tuningJobs")
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert {d["@type"].rpartition(".")[2] for d in error["details"]} >= {"ErrorInfo"}


async def test_another_tenants_job_is_not_found(express: System) -> None:
    dataset = await express.upload(jsonl())
    job = await tune(client_of(express), dataset.name)
    assert job.name is not None
    other = client_of(express, "team-b")
    own_project = job.name.replace("projects/team-a/", "projects/team-b/")
    for name in (job.name, own_project):
        with pytest.raises(errors.ClientError) as caught:
            await call(other.tunings.get, name=name)
        assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
        with pytest.raises(errors.ClientError):
            await call(other.tunings.cancel, name=name)
    assert await call(lambda: list(other.tunings.list())) == []
    endpoint = job.name.replace("/tuningJobs/", "/endpoints/")
    with pytest.raises(errors.ClientError) as caught:
        await call(other.models.generate_content, model=endpoint, contents="3")
    assert caught.value.code == 404
    owner = client_of(express)
    with pytest.raises(errors.ClientError) as caught:  # the owner's, not trained yet
        await call(owner.models.generate_content, model=endpoint, contents="3")
    assert (caught.value.code, caught.value.status) == (400, "FAILED_PRECONDITION")


async def test_a_cloud_storage_uri_is_refused_naming_the_field(express: System) -> None:
    client = client_of(express)
    with pytest.raises(errors.ClientError) as caught:
        await tune(client, "gs://my-bucket/train.jsonl")
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert fields_named(caught.value.details) == ["supervisedTuningSpec.trainingDatasetUri"]
    assert "does not read Cloud Storage" in (caught.value.message or "")


async def test_the_platforms_violations_name_the_bodys_fields(express: System) -> None:
    dataset = await express.upload(jsonl())
    with pytest.raises(errors.ClientError) as caught:
        await tune(client_of(express), dataset.name, epoch_count=0)
    assert caught.value.code == 400
    assert fields_named(caught.value.details) == ["supervisedTuningSpec.hyperParameters.epochCount"]
    with pytest.raises(errors.ClientError) as caught:
        await tune(client_of(express), "datasets/d" + "a" * 19)  # well-shaped, never uploaded
    assert fields_named(caught.value.details) == ["supervisedTuningSpec.trainingDatasetUri"]


async def test_bad_bodies_are_refused_before_any_work(express: System) -> None:
    headers = {"x-goog-api-key": express.tenants["team-a"].token}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{express.api.express_port}", headers=headers
    ) as http:
        not_json = await http.post("/v1beta1/tuningJobs", content=b"{not json")
        unknown = await http.post(
            "/v1beta1/tuningJobs",
            json={"baseModel": BASE_MODEL, "preferenceOptimizationSpec": {}},
        )
        too_large = await http.post(
            f"/v1beta1/{PREFIX}j{'a' * 19}:cancel", content=b" " * (65 * 1024)
        )
        bad_page = await http.get("/v1beta1/tuningJobs", params={"pageSize": "many"})
        no_route = await http.get("/v1beta1/tunedModels")
    for answer in (not_json, unknown, too_large, bad_page):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert answer.headers["x-request-id"]
    assert "preferenceOptimizationSpec" in fields_named(unknown.json()["error"])
    assert reason(too_large.json()["error"]) == "REQUEST_TOO_LARGE"
    assert no_route.status_code == 404


async def test_a_spent_create_quota_is_429_with_retry_info(make_system: SystemFactory) -> None:
    overrides = {"tenant_creates_per_minute": 1.0, "tenant_create_burst": 1}
    async with make_system(express_listen="127.0.0.1:0", with_worker=False, **overrides) as system:
        dataset = await system.upload(jsonl())
        client = client_of(system)
        await tune(client, dataset.name)
        with pytest.raises(errors.ClientError) as caught:
            await tune(client, dataset.name)
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    types_sent = {d["@type"].rpartition(".")[2] for d in caught.value.details["error"]["details"]}
    assert {"RetryInfo", "QuotaFailure"} <= types_sent
    assert caught.value.response.headers["retry-after"]


async def test_a_body_that_stalls_is_refused_at_the_idle_timeout(
    make_system: SystemFactory,
) -> None:
    async with make_system(
        express_listen="127.0.0.1:0", with_worker=False, upload_idle_timeout_s=0.2
    ) as system:
        token = system.tenants["team-a"].token
        reader, writer = await asyncio.open_connection("127.0.0.1", system.api.express_port)
        head = (
            "POST /v1beta1/tuningJobs HTTP/1.1\r\nHost: facade\r\n"
            f"x-goog-api-key: {token}\r\nContent-Length: 100\r\n\r\n{{"
        )
        writer.write(head.encode())  # one byte of the hundred promised, then nothing
        async with asyncio.timeout(5):
            status_line = await reader.readline()
        writer.close()
        await writer.wait_closed()
    assert status_line.split()[1] == b"504", status_line


async def test_the_facade_is_off_unless_configured(api_only: System) -> None:
    assert api_only.api.express_port == 0


async def test_its_requests_are_counted_as_the_rpcs_are(express: System) -> None:
    client = client_of(express)
    await call(lambda: list(client.tunings.list()))
    stranger = client_of(express, token="nobody")  # kept: a Client closes when collected
    with pytest.raises(errors.ClientError):
        await call(stranger.tunings.list)
    registry = express.api_metrics.registry
    listed = {"method": "/vertex_express/tuningJobs.list", "code": "OK"}
    refused = {"method": "/vertex_express/unrouted", "code": "UNAUTHENTICATED"}
    assert registry.get_sample_value("tuning_rpcs_total", listed) == 1
    assert registry.get_sample_value("tuning_rpcs_total", refused) == 1


@pytest.fixture
async def mtls_api(express: System, tmp_path: Path) -> AsyncIterator[tuple[ApiServer, Authority]]:
    """A second API on the same system, its facade behind mutual TLS (service.tls's
    settings: the server's certificate, and the CA that signs its clients')."""
    ca = Authority()
    cert, key = ca.server().write(tmp_path, "server")
    ca_file = tmp_path / "client-ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    settings = dataclasses.replace(
        express.settings,
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        tls_client_ca_file=str(ca_file),
    )
    tenants = TenantDirectory.watch(express.tenants_file)
    api = await start_api(settings, express.redis, tenants, listen="127.0.0.1:0")
    yield api, ca
    await api.stop(1.0)


def tls_context(ca: Authority, client: Issued | None, tmp_path: Path) -> ssl.SSLContext:
    """A client context trusting `ca`, presenting `client`'s certificate if given."""
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    if client is not None:
        cert, key = client.write(tmp_path, "client")
        context.load_cert_chain(cert, key)
    return context


async def test_under_mutual_tls_the_certificate_and_the_key_must_agree(
    express: System, mtls_api: tuple[ApiServer, Authority], tmp_path: Path
) -> None:
    api, ca = mtls_api
    base_url = f"https://127.0.0.1:{api.express_port}"
    context = tls_context(ca, ca.client("team-a"), tmp_path)

    def client(tenant: str) -> genai.Client:
        options = types.HttpOptions(base_url=base_url, client_args={"verify": context})
        return genai.Client(
            vertexai=True, api_key=express.tenants[tenant].token, http_options=options
        )

    same, other = client("team-a"), client("team-b")
    try:
        assert await call(lambda: list(same.tunings.list())) == []
        with pytest.raises(errors.ClientError) as caught:
            await call(other.tunings.list)
    finally:  # before the API stops: a TLS connection left open outlives the test's loop
        same.close()
        other.close()
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED")
    async with httpx.AsyncClient(base_url=base_url, verify=context) as http:
        by_certificate = await http.get("/v1beta1/tuningJobs")  # no key: the certificate names
    assert by_certificate.status_code == 200, by_certificate.text
    stranger = tls_context(ca, None, tmp_path)
    async with httpx.AsyncClient(base_url=base_url, verify=stranger) as http:
        with pytest.raises(httpx.HTTPError):  # the handshake refuses it
            await http.get("/v1beta1/tuningJobs")


def fields_named(details: Any) -> list[str]:
    """The BadRequest field violations' fields in an error envelope (or its `error`)."""
    error = details.get("error", details)
    return [
        v["field"]
        for d in error["details"]
        if d["@type"].endswith("BadRequest")
        for v in d["fieldViolations"]
    ]


def reason(error: dict[str, Any]) -> str:
    infos = [d for d in error["details"] if d["@type"].endswith("ErrorInfo")]
    return str(infos[0]["reason"])
