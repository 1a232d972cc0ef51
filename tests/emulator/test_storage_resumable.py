"""Resumable uploads over plain HTTP: chunks, status queries, resuming, faults per chunk."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import google_crc32c
import httpx
import pytest

from emulator.storage_uploads import MAX_OPEN_SESSIONS
from tests.emulator.helpers import CLOUD, bearer, emulator_stats, inject_faults

BUCKET = "training-files"
UPLOAD = f"/upload/storage/v1/b/{BUCKET}/o"
OBJECTS = f"/storage/v1/b/{BUCKET}/o"
MIB = 1024 * 1024
DEADLINE_S = 5.0


class Interrupted(Exception):
    """Raised by a request body to break its connection mid-chunk."""


@pytest.fixture
async def writer(http: httpx.AsyncClient) -> dict[str, str]:
    """Authorization header with the cloud-platform scope."""
    return await bearer(http, CLOUD)


def crc32c_of(data: bytes) -> str:
    """The CRC32C of ``data`` as the JSON API writes it (big-endian, base64)."""
    value: int = google_crc32c.value(data)
    return base64.b64encode(value.to_bytes(4, "big")).decode()


async def start_session(
    http: httpx.AsyncClient, headers: dict[str, str], name: str, **params: Any
) -> str:
    """Start a resumable upload of ``name``; the session URI."""
    response = await http.post(
        UPLOAD,
        params={"uploadType": "resumable", **params},
        json={"name": name, "metadata": {"kind": "training"}},
        headers={**headers, "X-Upload-Content-Type": "application/jsonl"},
    )
    assert response.status_code == 200, response.text
    location: str = response.headers["Location"]
    assert "upload_id=" in location
    return location


async def put_chunk(
    http: httpx.AsyncClient, url: str, data: bytes, first: int, total: int | str
) -> httpx.Response:
    last = first + len(data) - 1
    return await http.put(
        url, content=data, headers={"Content-Range": f"bytes {first}-{last}/{total}"}
    )


async def status(http: httpx.AsyncClient, url: str, total: int | str = "*") -> httpx.Response:
    return await http.put(url, headers={"Content-Range": f"bytes */{total}"})


async def uploads(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/_emulator/storage/uploads")
    assert response.status_code == 200
    found: list[dict[str, Any]] = response.json()["uploads"]
    return found


async def wait_until_received(http: httpx.AsyncClient, count: int) -> None:
    """Poll the emulator until its one open session holds ``count`` bytes."""
    deadline = time.monotonic() + DEADLINE_S
    while (await uploads(http))[0]["received"] < count:
        assert time.monotonic() < deadline, "the emulator never received the bytes"
        await asyncio.sleep(0.01)


async def test_chunks_then_the_object(http: httpx.AsyncClient, writer: dict[str, str]) -> None:
    data = os.urandom(3 * MIB + 17)
    url = await start_session(http, writer, "runs/r1/train.jsonl")

    fresh = await status(http, url)
    first = await put_chunk(http, url, data[:MIB], 0, "*")
    second = await put_chunk(http, url, data[MIB : 2 * MIB], MIB, "*")
    last = await put_chunk(http, url, data[2 * MIB :], 2 * MIB, len(data))

    assert fresh.status_code == 308 and "range" not in fresh.headers
    assert first.status_code == 308 and first.headers["range"] == f"bytes=0-{MIB - 1}"
    assert second.headers["range"] == f"bytes=0-{2 * MIB - 1}"
    assert last.status_code == 200, last.text
    resource = last.json()
    assert resource["name"] == "runs/r1/train.jsonl" and resource["size"] == str(len(data))
    assert resource["crc32c"] == crc32c_of(data)
    assert resource["contentType"] == "application/jsonl"
    assert resource["metadata"] == {"kind": "training"}
    media = await http.get(
        f"{OBJECTS}/runs%2Fr1%2Ftrain.jsonl", params={"alt": "media"}, headers=writer
    )
    assert media.content == data


async def test_no_object_until_the_last_byte(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    url = await start_session(http, writer, "partial")

    await put_chunk(http, url, b"x" * 1000, 0, 2000)

    assert (await http.get(f"{OBJECTS}/partial", headers=writer)).status_code == 404
    done = await put_chunk(http, url, b"y" * 1000, 1000, 2000)
    assert done.status_code == 200


async def test_resume_after_an_interrupted_chunk(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    data = os.urandom(3 * MIB)
    arrived = data[:MIB]
    url = await start_session(http, writer, "resumed.bin")

    async def broken_body() -> AsyncIterator[bytes]:
        yield arrived
        await wait_until_received(http, len(arrived))
        raise Interrupted

    with pytest.raises(Interrupted):
        await http.put(
            url,
            content=broken_body(),
            headers={
                "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}",
                "Content-Length": str(len(data)),
            },
        )
    query = await status(http, url, len(data))
    resumed = await put_chunk(http, url, data[len(arrived) :], len(arrived), len(data))

    assert query.status_code == 308
    assert query.headers["range"] == f"bytes=0-{len(arrived) - 1}"
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["crc32c"] == crc32c_of(data)


async def test_a_retried_chunk_skips_bytes_already_held(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    url = await start_session(http, writer, "retried")

    await put_chunk(http, url, b"abcdef", 0, 10)
    again = await put_chunk(http, url, b"defghij", 3, 10)

    assert again.status_code == 200
    assert again.json()["size"] == "10"
    media = await http.get(f"{OBJECTS}/retried", params={"alt": "media"}, headers=writer)
    assert media.content == b"abcdefghij"


async def test_a_chunk_past_the_received_bytes_is_400(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    url = await start_session(http, writer, "gap")
    await put_chunk(http, url, b"abc", 0, "*")

    gap = await put_chunk(http, url, b"xyz", 10, "*")

    assert gap.status_code == 400
    assert gap.json()["error"]["errors"][0]["reason"] == "invalid"
    assert (await status(http, url)).headers["range"] == "bytes=0-2"


async def test_a_finished_session_answers_the_object_again(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    url = await start_session(http, writer, "twice")
    done = await put_chunk(http, url, b"all", 0, 3)

    query = await status(http, url)
    repeated = await put_chunk(http, url, b"all", 0, 3)

    assert done.status_code == query.status_code == repeated.status_code == 200
    assert query.json()["generation"] == repeated.json()["generation"] == done.json()["generation"]


async def test_the_final_chunk_hash_is_checked(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    url = await start_session(http, writer, "hashed")

    wrong = await http.put(
        url,
        content=b"data",
        headers={"Content-Range": "bytes 0-3/4", "x-goog-hash": f"crc32c={crc32c_of(b'other')}"},
    )

    assert wrong.status_code == 400
    assert (await http.get(f"{OBJECTS}/hashed", headers=writer)).status_code == 404
    assert (await status(http, url)).status_code == 404


async def test_preconditions_hold_at_the_start_and_at_the_end(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    url = await start_session(http, writer, "raced", ifGenerationMatch="0")
    rival = await start_session(http, writer, "raced", ifGenerationMatch="0")
    await put_chunk(http, rival, b"rival", 0, 5)

    late = await put_chunk(http, url, b"mine!", 0, 5)
    refused_start = await http.post(
        UPLOAD,
        params={"uploadType": "resumable", "ifGenerationMatch": "0"},
        json={"name": "raced"},
        headers=writer,
    )

    assert late.status_code == 412
    assert late.json()["error"]["errors"][0]["reason"] == "conditionNotMet"
    assert refused_start.status_code == 412
    media = await http.get(f"{OBJECTS}/raced", params={"alt": "media"}, headers=writer)
    assert media.content == b"rival"


async def test_a_cancelled_session_is_gone(http: httpx.AsyncClient, writer: dict[str, str]) -> None:
    url = await start_session(http, writer, "cancelled")
    await put_chunk(http, url, b"abc", 0, "*")

    cancelled = await http.delete(url)

    assert cancelled.status_code == 499
    assert (await status(http, url)).status_code == 404
    assert await uploads(http) == []


async def test_an_unknown_session_is_404(http: httpx.AsyncClient) -> None:
    response = await status(http, f"{UPLOAD}?uploadType=resumable&upload_id=nope")

    assert response.status_code == 404
    assert response.json()["error"]["errors"][0]["reason"] == "notFound"


async def test_a_fault_on_a_chunk_then_resume(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    data = os.urandom(2 * MIB)
    url = await start_session(http, writer, "faulted")
    await inject_faults(http, {"route": "storage.objects.insert", "status": 503})

    refused = await put_chunk(http, url, data[:MIB], 0, len(data))
    query = await status(http, url, len(data))
    first = await put_chunk(http, url, data[:MIB], 0, len(data))
    last = await put_chunk(http, url, data[MIB:], MIB, len(data))

    assert refused.status_code == 503
    assert refused.json()["error"]["errors"][0]["reason"] == "backendError"
    assert query.status_code == 308 and "range" not in query.headers
    assert first.status_code == 308 and last.status_code == 200
    stats = await emulator_stats(http)
    assert stats["requests"]["POST storage.objects.insert"] == 1
    assert stats["requests"]["PUT storage.objects.insert"] == 4


async def test_a_dropped_chunk_answer_still_keeps_the_bytes(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    url = await start_session(http, writer, "dropped")
    await inject_faults(http, {"route": "storage.objects.insert", "drop": True})

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await put_chunk(http, url, b"0123456789", 0, 20)
    query = await status(http, url, 20)
    last = await put_chunk(http, url, b"abcdefghij", 10, 20)

    assert query.headers["range"] == "bytes=0-9"
    assert last.status_code == 200 and last.json()["size"] == "20"


async def test_a_chunk_longer_than_its_range_is_400(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    url = await start_session(http, writer, "long-chunk")

    response = await http.put(url, content=b"abcdef", headers={"Content-Range": "bytes 0-2/*"})

    assert response.status_code == 400
    assert (await http.get(f"{OBJECTS}/long-chunk", headers=writer)).status_code == 404


async def test_open_sessions_are_bounded(http: httpx.AsyncClient, writer: dict[str, str]) -> None:
    urls = [await start_session(http, writer, f"s{n}") for n in range(MAX_OPEN_SESSIONS)]

    refused = await http.post(
        UPLOAD, params={"uploadType": "resumable"}, json={"name": "one-more"}, headers=writer
    )
    await put_chunk(http, urls[0], b"done", 0, 4)
    accepted = await http.post(
        UPLOAD, params={"uploadType": "resumable"}, json={"name": "one-more"}, headers=writer
    )

    assert refused.status_code == 429
    assert refused.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    assert accepted.status_code == 200
