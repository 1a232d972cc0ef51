"""google-cloud-storage, Google's own client, judges the emulated Cloud Storage JSON API.

The client builds the URLs, uploads (multipart up to 8 MiB, resumable above), checks the
CRC32C of what it uploads and downloads, follows ``mediaLink`` and page tokens, and maps the
JSON API's error envelope to ``google.api_core.exceptions``. The emulator has no code for it.

The client is synchronous (requests), so each call runs in a thread while the emulator
serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import google.oauth2.credentials
import httpx
import pytest
from google.api_core import exceptions
from google.cloud import storage

from tests.emulator.helpers import CLOUD, bearer, emulator_stats, inject_faults

T = TypeVar("T")
BUCKET = "training-files"
CHUNK_BYTES = 256 * 1024 * 4


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking client call in a thread."""
    return await asyncio.to_thread(function, *args, **kwargs)


@pytest.fixture
async def gcs(emulator_url: str, http: httpx.AsyncClient) -> AsyncIterator[storage.Client]:
    """A google-cloud-storage client on the emulator, with a cloud-platform access token."""
    token = (await bearer(http, CLOUD))["Authorization"].removeprefix("Bearer ")
    credentials = google.oauth2.credentials.Credentials(token=token)  # type: ignore[no-untyped-call]
    client = storage.Client(
        project="p", credentials=credentials, client_options={"api_endpoint": emulator_url}
    )
    yield client
    client.close()


async def objects_seen(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """``GET /_emulator/storage/objects``, keyed by ``bucket/name``."""
    response = await http.get("/_emulator/storage/objects")
    assert response.status_code == 200, response.text
    return {f"{o['bucket']}/{o['name']}": o for o in response.json()["objects"]}


async def test_small_upload_is_multipart_and_reads_back(
    gcs: storage.Client, http: httpx.AsyncClient
) -> None:
    blob = gcs.bucket(BUCKET).blob("runs/r1/train.jsonl")
    data = b'{"contents": []}\n' * 100

    await call(blob.upload_from_string, data, content_type="application/jsonl")

    assert blob.size == len(data)
    assert blob.generation is not None and blob.generation > 0
    assert await call(blob.download_as_bytes, checksum="crc32c") == data
    seen = (await objects_seen(http))[f"{BUCKET}/runs/r1/train.jsonl"]
    assert seen["size"] == len(data) and seen["crc32c"] == blob.crc32c
    assert seen["contentType"] == "application/jsonl"
    stats = await emulator_stats(http)
    assert stats["requests"]["POST storage.objects.insert"] == 1


async def test_large_upload_is_resumable_in_several_chunks(
    gcs: storage.Client, http: httpx.AsyncClient
) -> None:
    data = os.urandom(9 * 1024 * 1024 + 12345)
    blob = gcs.bucket(BUCKET).blob("big/train.jsonl", chunk_size=CHUNK_BYTES)

    await call(blob.upload_from_string, data)

    chunks = -(-len(data) // CHUNK_BYTES)
    stats = await emulator_stats(http)
    assert stats["requests"]["POST storage.objects.insert"] == 1
    assert stats["requests"]["PUT storage.objects.insert"] == chunks
    fresh = gcs.bucket(BUCKET).blob("big/train.jsonl")
    assert await call(fresh.download_as_bytes, checksum="crc32c") == data


async def test_create_only_upload_refuses_a_second_write(gcs: storage.Client) -> None:
    blob = gcs.bucket(BUCKET).blob("once.jsonl")
    await call(blob.upload_from_string, b"first", if_generation_match=0)
    first_generation = blob.generation

    again = gcs.bucket(BUCKET).blob("once.jsonl")
    with pytest.raises(exceptions.PreconditionFailed):
        await call(again.upload_from_string, b"second", if_generation_match=0)

    await call(again.reload)
    assert again.generation == first_generation
    assert await call(again.download_as_bytes) == b"first"


async def test_create_only_resumable_upload_refuses_a_second_write(gcs: storage.Client) -> None:
    data = os.urandom(8 * 1024 * 1024 + 1)
    blob = gcs.bucket(BUCKET).blob("once-big.bin", chunk_size=CHUNK_BYTES)
    await call(blob.upload_from_string, data, if_generation_match=0)

    again = gcs.bucket(BUCKET).blob("once-big.bin", chunk_size=CHUNK_BYTES)
    with pytest.raises(exceptions.PreconditionFailed):
        await call(again.upload_from_string, data[::-1], if_generation_match=0)
    assert await call(again.download_as_bytes) == data


async def test_download_of_a_byte_range(gcs: storage.Client) -> None:
    data = bytes(range(256)) * 40
    blob = gcs.bucket(BUCKET).blob("ranged.bin")
    await call(blob.upload_from_string, data)

    assert await call(blob.download_as_bytes, start=100, end=1099) == data[100:1100]
    assert await call(blob.download_as_bytes, start=len(data) - 10) == data[-10:]


async def test_reload_reports_size_crc32c_and_generation(gcs: storage.Client) -> None:
    blob = gcs.bucket(BUCKET).blob("meta/one.jsonl")
    blob.metadata = {"run": "r-7"}
    await call(blob.upload_from_string, b"abc" * 1000, content_type="application/jsonl")

    fresh = gcs.bucket(BUCKET).blob("meta/one.jsonl")
    await call(fresh.reload)

    assert fresh.size == 3000
    assert fresh.crc32c == blob.crc32c and fresh.md5_hash == blob.md5_hash
    assert fresh.generation == blob.generation and fresh.metageneration == 1
    assert fresh.content_type == "application/jsonl"
    assert fresh.metadata == {"run": "r-7"}
    assert fresh.time_created is not None


async def test_overwrite_makes_a_new_generation(gcs: storage.Client) -> None:
    blob = gcs.bucket(BUCKET).blob("rewritten.txt")
    await call(blob.upload_from_string, b"one")
    first = blob.generation
    await call(blob.upload_from_string, b"two", if_generation_match=first)

    assert blob.generation is not None and first is not None and blob.generation > first
    with pytest.raises(exceptions.PreconditionFailed):
        await call(blob.upload_from_string, b"three", if_generation_match=first)
    assert await call(blob.download_as_bytes) == b"two"


async def test_delete_then_not_found(gcs: storage.Client, http: httpx.AsyncClient) -> None:
    blob = gcs.bucket(BUCKET).blob("gone.txt")
    await call(blob.upload_from_string, b"bye")

    await call(blob.delete)

    assert f"{BUCKET}/gone.txt" not in await objects_seen(http)
    assert not await call(blob.exists)
    with pytest.raises(exceptions.NotFound):
        await call(blob.reload)
    with pytest.raises(exceptions.NotFound):
        await call(blob.download_as_bytes)
    with pytest.raises(exceptions.NotFound):
        await call(blob.delete)


async def test_missing_object_is_not_found(gcs: storage.Client) -> None:
    blob = gcs.bucket(BUCKET).blob("never/written.jsonl")
    with pytest.raises(exceptions.NotFound) as caught:
        await call(blob.reload)
    assert caught.value.errors[0]["reason"] == "notFound"
    with pytest.raises(exceptions.NotFound):
        await call(blob.download_as_bytes)


async def test_list_with_prefix_pages_through_everything(gcs: storage.Client) -> None:
    bucket = gcs.bucket(BUCKET)
    names = [f"runs/r2/part-{n:02d}.jsonl" for n in range(7)]
    for name in [*names, "runs/r3/other.jsonl", "top.txt"]:
        await call(bucket.blob(name).upload_from_string, name.encode())

    def listed_pages() -> list[list[str]]:
        pages = gcs.list_blobs(BUCKET, prefix="runs/r2/", max_results=None, page_size=3).pages
        return [[blob.name for blob in page] for page in pages]

    pages = await call(listed_pages)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [name for page in pages for name in page] == names


async def test_list_with_delimiter_rolls_up_prefixes(gcs: storage.Client) -> None:
    bucket = gcs.bucket(BUCKET)
    for name in ["a/1", "a/2", "b/1", "c"]:
        await call(bucket.blob(name).upload_from_string, b"x")

    def listed() -> tuple[list[str], set[str]]:
        iterator = gcs.list_blobs(BUCKET, delimiter="/")
        names = [blob.name for blob in iterator]
        return names, set(iterator.prefixes)

    names, prefixes = await call(listed)

    assert names == ["c"]
    assert prefixes == {"a/", "b/"}


async def test_empty_bucket_lists_nothing(gcs: storage.Client) -> None:
    assert await call(lambda: list(gcs.list_blobs("empty-bucket"))) == []


async def test_a_create_only_upload_is_retried_past_a_503(
    gcs: storage.Client, http: httpx.AsyncClient
) -> None:
    await inject_faults(http, {"route": "storage.objects.insert", "status": 503})
    blob = gcs.bucket(BUCKET).blob("retried.jsonl")

    await call(blob.upload_from_string, b"worth retrying", if_generation_match=0)

    stats = await emulator_stats(http)
    assert stats["requests"]["POST storage.objects.insert"] == 2
    assert await call(blob.download_as_bytes) == b"worth retrying"
