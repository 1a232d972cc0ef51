"""Fault knobs on the Cloud Storage routes, and uploads that are streamed, not held in memory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.emulator.helpers import CLOUD, bearer, emulator_stats, inject_faults

BUCKET = "training-files"
UPLOAD = f"/upload/storage/v1/b/{BUCKET}/o"
OBJECTS = f"/storage/v1/b/{BUCKET}/o"
MIB = 1024 * 1024


@pytest.fixture
async def writer(http: httpx.AsyncClient) -> dict[str, str]:
    """Authorization header with the cloud-platform scope."""
    return await bearer(http, CLOUD)


async def media_upload(
    http: httpx.AsyncClient, headers: dict[str, str], name: str, data: bytes
) -> httpx.Response:
    return await http.post(
        UPLOAD, params={"uploadType": "media", "name": name}, content=data, headers=headers
    )


async def object_names(http: httpx.AsyncClient) -> list[str]:
    response = await http.get("/_emulator/storage/objects")
    return [o["name"] for o in response.json()["objects"]]


def rss_bytes() -> int:
    """This process's resident set size (the emulator runs in it too)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_503_then_the_retry_succeeds(http: httpx.AsyncClient, writer: dict[str, str]) -> None:
    await inject_faults(http, {"route": "storage.objects.insert", "status": 503})

    refused = await media_upload(http, writer, "retried.jsonl", b"data")
    names_after_refusal = await object_names(http)
    retried = await media_upload(http, writer, "retried.jsonl", b"data")

    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == 503 and error["errors"][0]["reason"] == "backendError"
    assert names_after_refusal == []
    assert retried.status_code == 200
    assert await object_names(http) == ["retried.jsonl"]
    stats = await emulator_stats(http)
    assert stats["requests"]["POST storage.objects.insert"] == 2


async def test_429_on_reads_uses_the_json_api_envelope(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    await media_upload(http, writer, "r", b"x")
    await inject_faults(http, {"route": "storage.objects.get", "status": 429})

    limited = await http.get(f"{OBJECTS}/r", headers=writer)
    then = await http.get(f"{OBJECTS}/r", headers=writer)

    assert limited.status_code == 429
    assert limited.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    assert then.status_code == 200


async def test_drop_after_the_object_is_written(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    await inject_faults(http, {"route": "storage.objects.insert", "drop": True})

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await media_upload(http, writer, "lost-answer.jsonl", b"written")

    assert await object_names(http) == ["lost-answer.jsonl"]
    media = await http.get(f"{OBJECTS}/lost-answer.jsonl", params={"alt": "media"}, headers=writer)
    assert media.content == b"written"


async def test_error_after_the_write_keeps_the_object(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    await inject_faults(http, {"route": "storage.objects.insert", "status": 503, "after": True})

    answer = await media_upload(http, writer, "after.jsonl", b"kept")
    create_only = await http.post(
        UPLOAD,
        params={"uploadType": "media", "name": "after.jsonl", "ifGenerationMatch": "0"},
        content=b"kept",
        headers=writer,
    )

    assert answer.status_code == 503
    assert create_only.status_code == 412
    assert await object_names(http) == ["after.jsonl"]


async def test_a_streamed_64_mib_upload_and_download_stay_out_of_memory(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    piece = os.urandom(MIB)
    pieces = 64
    baseline = rss_bytes()
    peak = baseline

    async def body() -> AsyncIterator[bytes]:
        nonlocal peak
        for _ in range(pieces):
            peak = max(peak, rss_bytes())
            yield piece

    uploaded = await http.post(
        UPLOAD,
        params={"uploadType": "media", "name": "big.bin"},
        content=body(),
        headers={**writer, "Content-Length": str(pieces * MIB)},
    )
    received = 0
    async with http.stream(
        "GET", f"{OBJECTS}/big.bin", params={"alt": "media"}, headers=writer
    ) as download:
        async for chunk in download.aiter_bytes():
            received += len(chunk)
            peak = max(peak, rss_bytes())

    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["size"] == str(pieces * MIB)
    assert received == pieces * MIB
    assert peak - baseline < 24 * MIB, f"RSS grew by {(peak - baseline) / MIB:.1f} MiB"
