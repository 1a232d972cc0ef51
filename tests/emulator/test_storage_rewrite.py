"""Server-side copies in the emulated Cloud Storage: ``rewriteTo`` and ``copyTo``.

google-cloud-storage is the judge (``Blob.rewrite`` posts ``rewriteTo``, ``Bucket.copy_blob``
posts ``copyTo``), with plain HTTP for the answer's exact shape and the error envelopes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import google.oauth2.credentials
import httpx
import pytest
from google.api_core import exceptions

# google-cloud-storage ships no annotations, and mypy resolves google.cloud differently by
# which other modules a run checks (see pyproject's override for test_storage_client).
from google.cloud import storage  # type: ignore[attr-defined, import-untyped, unused-ignore]

from emulator import EmulatorConfig
from tests.emulator.helpers import CLOUD, GRANTS, bearer, emulator_stats, inject_faults
from tests.emulator.test_storage_client import call, objects_seen
from tests.emulator.test_storage_http import STORAGE_READER, json_api_error, media_upload

SOURCE_BUCKET = "training-files"
JOB_BUCKET = "job-files"
DATA = b'{"contents": [{"role": "user", "parts": [{"text": "1"}]}]}\n' * 500


@pytest.fixture
def config() -> EmulatorConfig:
    """The test grants plus a Cloud Storage read-only one."""
    return EmulatorConfig(grants=(*GRANTS, STORAGE_READER))


@pytest.fixture
async def writer(http: httpx.AsyncClient) -> dict[str, str]:
    """Authorization header with the cloud-platform scope."""
    return await bearer(http, CLOUD)


@pytest.fixture
async def gcs(emulator_url: str, writer: dict[str, str]) -> AsyncIterator[storage.Client]:
    """A google-cloud-storage client on the emulator, with a cloud-platform access token."""
    token = writer["Authorization"].removeprefix("Bearer ")
    credentials = google.oauth2.credentials.Credentials(token=token)  # type: ignore[no-untyped-call]
    client = storage.Client(
        project="p", credentials=credentials, client_options={"api_endpoint": emulator_url}
    )
    yield client
    client.close()


@pytest.fixture
async def dataset(gcs: storage.Client) -> storage.Blob:
    """A stored dataset object with a content type and custom metadata."""
    blob = gcs.bucket(SOURCE_BUCKET).blob("datasets/d1/train.jsonl")
    blob.metadata = {"tenant": "t1"}
    await call(blob.upload_from_string, DATA, content_type="application/jsonl")
    return blob


def rewrite_path(source: str, destination: str, verb: str = "rewriteTo") -> str:
    """The JSON API path copying ``source`` to ``destination`` (each ``bucket/name``)."""
    (sb, so), (db, do) = (name.split("/", 1) for name in (source, destination))
    encoded = [part.replace("/", "%2F") for part in (so, do)]
    return f"/storage/v1/b/{sb}/o/{encoded[0]}/{verb}/b/{db}/o/{encoded[1]}"


async def test_blob_rewrite_copies_bytes_and_metadata_in_one_call(
    gcs: storage.Client, http: httpx.AsyncClient, dataset: storage.Blob
) -> None:
    copy = gcs.bucket(JOB_BUCKET).blob("jobs/j1/train.jsonl")

    token, rewritten, size = await call(copy.rewrite, dataset, if_generation_match=0)

    assert (token, rewritten, size) == (None, len(DATA), len(DATA))
    assert copy.generation is not None and copy.generation > (dataset.generation or 0)
    assert (copy.content_type, copy.metadata) == ("application/jsonl", {"tenant": "t1"})
    assert copy.crc32c == dataset.crc32c and copy.md5_hash == dataset.md5_hash
    assert await call(copy.download_as_bytes, checksum="crc32c") == DATA
    assert f"{SOURCE_BUCKET}/{dataset.name}" in await objects_seen(http)
    stats = await emulator_stats(http)
    assert stats["requests"]["POST storage.objects.rewrite"] == 1


async def test_copy_blob_answers_the_new_object(
    gcs: storage.Client, http: httpx.AsyncClient, dataset: storage.Blob
) -> None:
    source_bucket, job_bucket = gcs.bucket(SOURCE_BUCKET), gcs.bucket(JOB_BUCKET)

    copy = await call(source_bucket.copy_blob, dataset, job_bucket, "jobs/j2/train.jsonl")

    assert (copy.bucket.name, copy.name, copy.size) == (
        JOB_BUCKET,
        "jobs/j2/train.jsonl",
        len(DATA),
    )
    assert copy.content_type == "application/jsonl"
    assert await call(copy.download_as_bytes, checksum="crc32c") == DATA
    assert (await emulator_stats(http))["requests"]["POST storage.objects.copy"] == 1


async def test_the_rewrite_response_has_the_json_api_shape(
    http: httpx.AsyncClient, writer: dict[str, str], dataset: storage.Blob
) -> None:
    path = rewrite_path(f"{SOURCE_BUCKET}/{dataset.name}", f"{JOB_BUCKET}/jobs/j3/train.jsonl")

    response = await http.post(path, params={"rewriteToken": "ignored"}, headers=writer)

    body = response.json()
    assert response.status_code == 200, response.text
    assert {k: v for k, v in body.items() if k != "resource"} == {
        "kind": "storage#rewriteResponse",
        "totalBytesRewritten": str(len(DATA)),
        "objectSize": str(len(DATA)),
        "done": True,
    }
    resource = body["resource"]
    assert resource["kind"] == "storage#object"
    assert (resource["bucket"], resource["name"]) == (JOB_BUCKET, "jobs/j3/train.jsonl")
    assert resource["size"] == str(len(DATA)) and resource["metageneration"] == "1"


async def test_the_body_overrides_content_type_and_metadata(
    gcs: storage.Client, dataset: storage.Blob
) -> None:
    copy = gcs.bucket(JOB_BUCKET).blob("jobs/j4/train.jsonl")
    copy.content_type = "text/plain"
    copy.metadata = {"job": "j4"}

    await call(copy.rewrite, dataset)

    fresh = await call(gcs.bucket(JOB_BUCKET).get_blob, "jobs/j4/train.jsonl")
    assert fresh is not None
    assert (fresh.content_type, fresh.metadata) == ("text/plain", {"job": "j4"})


async def test_a_create_only_rewrite_onto_an_existing_object_is_412(
    gcs: storage.Client, http: httpx.AsyncClient, writer: dict[str, str], dataset: storage.Blob
) -> None:
    taken = gcs.bucket(JOB_BUCKET).blob("jobs/j5/train.jsonl")
    await call(taken.upload_from_string, b"already here")
    path = rewrite_path(f"{SOURCE_BUCKET}/{dataset.name}", f"{JOB_BUCKET}/{taken.name}")

    with pytest.raises(exceptions.PreconditionFailed):
        await call(taken.rewrite, dataset, if_generation_match=0)
    refused = await http.post(path, params={"ifGenerationMatch": "0"}, headers=writer)

    assert refused.status_code == 412
    assert json_api_error(refused)["reason"] == "conditionNotMet"
    assert await call(taken.download_as_bytes) == b"already here"


async def test_source_preconditions_and_generation(
    http: httpx.AsyncClient, writer: dict[str, str], dataset: storage.Blob
) -> None:
    path = rewrite_path(f"{SOURCE_BUCKET}/{dataset.name}", f"{JOB_BUCKET}/jobs/j6/train.jsonl")
    stale = str((dataset.generation or 0) - 1)

    matched = await http.post(
        path, params={"ifSourceGenerationMatch": str(dataset.generation)}, headers=writer
    )
    mismatched = await http.post(path, params={"ifSourceGenerationMatch": stale}, headers=writer)
    stale_source = await http.post(path, params={"sourceGeneration": stale}, headers=writer)

    assert matched.status_code == 200, matched.text
    assert mismatched.status_code == 412
    assert json_api_error(mismatched)["reason"] == "conditionNotMet"
    assert stale_source.status_code == 404
    assert json_api_error(stale_source)["reason"] == "notFound"


async def test_a_missing_source_is_not_found(gcs: storage.Client, http: httpx.AsyncClient) -> None:
    missing = gcs.bucket(SOURCE_BUCKET).blob("datasets/none.jsonl")
    copy = gcs.bucket(JOB_BUCKET).blob("jobs/j7/train.jsonl")

    with pytest.raises(exceptions.NotFound):
        await call(copy.rewrite, missing)
    with pytest.raises(exceptions.NotFound):
        await call(gcs.bucket(SOURCE_BUCKET).copy_blob, missing, gcs.bucket(JOB_BUCKET))

    assert f"{JOB_BUCKET}/{copy.name}" not in await objects_seen(http)


async def test_a_copy_needs_a_storage_write_scope(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    await media_upload(http, writer, "src.jsonl", b"x")
    reader = await bearer(http, STORAGE_READER)
    source, destination = f"{SOURCE_BUCKET}/src.jsonl", f"{JOB_BUCKET}/dst.jsonl"

    refused = [
        await http.post(rewrite_path(source, destination, verb), headers=reader)
        for verb in ("rewriteTo", "copyTo")
    ]

    assert [response.status_code for response in refused] == [403, 403]
    assert json_api_error(refused[0])["reason"] == "insufficientPermissions"


async def test_the_copy_outlives_its_source_and_an_overwrite(
    gcs: storage.Client, dataset: storage.Blob
) -> None:
    copy = gcs.bucket(JOB_BUCKET).blob("jobs/j8/train.jsonl")
    await call(copy.rewrite, dataset)

    await call(dataset.delete)
    survived = await call(copy.download_as_bytes, checksum="crc32c")
    await call(copy.upload_from_string, b"replaced")

    assert survived == DATA
    assert await call(copy.download_as_bytes) == b"replaced"


async def test_rewriting_an_object_onto_itself_makes_a_new_generation(
    gcs: storage.Client, dataset: storage.Blob
) -> None:
    same = gcs.bucket(SOURCE_BUCKET).blob(dataset.name)

    await call(same.rewrite, dataset, if_generation_match=dataset.generation)

    assert same.generation is not None and same.generation > (dataset.generation or 0)
    assert await call(same.download_as_bytes, checksum="crc32c") == DATA


async def test_a_create_only_rewrite_is_retried_past_a_503(
    gcs: storage.Client, http: httpx.AsyncClient, dataset: storage.Blob
) -> None:
    await inject_faults(http, {"route": "storage.objects.rewrite", "status": 503})
    copy = gcs.bucket(JOB_BUCKET).blob("jobs/j9/train.jsonl")

    await call(copy.rewrite, dataset, if_generation_match=0)

    requests: dict[str, Any] = (await emulator_stats(http))["requests"]
    assert requests["POST storage.objects.rewrite"] == 2
    assert await call(copy.download_as_bytes) == DATA
