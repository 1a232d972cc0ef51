"""Staging training files in the emulated Cloud Storage: create-only, verified, streamed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator

import google_crc32c
import pytest

from core.cloud_storage import MULTIPART_MAX_BYTES, RESUMABLE_CHUNK_BYTES
from core.errors import UpstreamRejected
from tests.worker.conftest import fenced
from tests.worker.vertex.conftest import BUCKET, Vertex
from worker.fence import FenceMissing

INSERTS = "storage.objects.insert"


def crc32c_of(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def pieces(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """`data` as a stream of small chunks, as training lines come."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_new_object_is_written_with_the_checksum_of_its_bytes(vertex: Vertex) -> None:
    data = b'{"contents": []}\n' * 100
    with fenced():
        staged = await vertex.storage.upload(vertex.auth(), BUCKET, "s/j1.jsonl", pieces(data, 7))
    assert (staged.size, staged.crc32c) == (len(data), crc32c_of(data))
    assert staged.uri == f"gs://{BUCKET}/s/j1.jsonl"
    meta = await vertex.storage.get_metadata(vertex.auth(), BUCKET, "s/j1.jsonl")
    assert meta["crc32c"] == crc32c_of(data)
    assert await vertex.upstream.requests(INSERTS) == 1


async def test_writing_the_same_bytes_again_finds_them_written(vertex: Vertex) -> None:
    data = b"line\n" * 1000
    with fenced():
        first = await vertex.storage.upload(vertex.auth(), BUCKET, "j2.jsonl", pieces(data))
        again = await vertex.storage.upload(vertex.auth(), BUCKET, "j2.jsonl", pieces(data))
    assert again == first  # The same generation: nothing was replaced.
    assert await vertex.upstream.requests(INSERTS) == 2


async def test_other_bytes_under_the_name_are_refused_and_left_alone(vertex: Vertex) -> None:
    with fenced():
        first = await vertex.storage.upload(vertex.auth(), BUCKET, "j3.jsonl", [b"ours\n"])
        with pytest.raises(UpstreamRejected, match="other bytes"):
            await vertex.storage.upload(vertex.auth(), BUCKET, "j3.jsonl", [b"theirs\n"])
    meta = await vertex.storage.get_metadata(vertex.auth(), BUCKET, "j3.jsonl")
    assert (meta["generation"], meta["crc32c"]) == (first.generation, crc32c_of(b"ours\n"))


async def test_a_large_file_goes_up_resumably_chunk_by_chunk(vertex: Vertex) -> None:
    data = bytes(range(256)) * (MULTIPART_MAX_BYTES // 256 * 2 + 3)  # 2 chunks and a bit
    with fenced():
        staged = await vertex.storage.upload(vertex.auth(), BUCKET, "big.jsonl", pieces(data))
    assert (staged.size, staged.crc32c) == (len(data), crc32c_of(data))
    # The session's start, then three chunks.
    assert await vertex.upstream.requests(INSERTS) == 4
    with fenced():
        again = await vertex.storage.upload(vertex.auth(), BUCKET, "big.jsonl", pieces(data))
        assert again == staged
        with pytest.raises(UpstreamRejected, match="other bytes"):
            await vertex.storage.upload(vertex.auth(), BUCKET, "big.jsonl", pieces(data[1:]))


async def test_a_file_that_ends_on_a_full_chunk_is_finished_by_an_empty_one(
    vertex: Vertex,
) -> None:
    data = bytes(range(256)) * (RESUMABLE_CHUNK_BYTES // 256 * 2)  # exactly 2 chunks
    with fenced():
        staged = await vertex.storage.upload(vertex.auth(), BUCKET, "even.jsonl", pieces(data))
    assert (staged.size, staged.crc32c) == (len(data), crc32c_of(data))
    # The session's start, two full chunks, then the empty one that states the total.
    assert await vertex.upstream.requests(INSERTS) == 4


async def test_a_file_of_exactly_one_requests_size_goes_in_one(vertex: Vertex) -> None:
    data = b"x" * MULTIPART_MAX_BYTES
    with fenced():
        staged = await vertex.storage.upload(vertex.auth(), BUCKET, "edge.jsonl", pieces(data))
    assert staged.crc32c == crc32c_of(data)
    assert await vertex.upstream.requests(INSERTS) == 1


async def test_delete_succeeds_when_already_gone(vertex: Vertex) -> None:
    with fenced():
        await vertex.storage.upload(vertex.auth(), BUCKET, "gone.jsonl", [b"x\n"])
        await vertex.storage.delete(vertex.auth(), BUCKET, "gone.jsonl")
        await vertex.storage.delete(vertex.auth(), BUCKET, "gone.jsonl")
    assert not await vertex.storage.exists(vertex.auth(), BUCKET, "gone.jsonl")


async def test_no_write_leaves_outside_a_fence(vertex: Vertex) -> None:
    with pytest.raises(FenceMissing):
        await vertex.storage.upload(vertex.auth(), BUCKET, "nofence.jsonl", [b"x\n"])
    with pytest.raises(FenceMissing):
        await vertex.storage.delete(vertex.auth(), BUCKET, "nofence.jsonl")
    assert await vertex.upstream.requests(INSERTS) == 0
    assert await vertex.upstream.requests("storage.objects.delete") == 0


async def test_a_chunk_refused_for_its_token_is_sent_again_whole(vertex: Vertex) -> None:
    data = bytes(range(256)) * (RESUMABLE_CHUNK_BYTES // 256 * 2 + 5)  # two chunks and a bit

    async def refused_once_under_way() -> AsyncIterator[bytes]:
        sent, injected = 0, False
        for piece in pieces(data):
            if sent > MULTIPART_MAX_BYTES + 1 and not injected:
                # The session has begun and its first chunk is in: the next request,
                # the second chunk, meets a 401, as an expired token would.
                await vertex.upstream.faults({"route": INSERTS, "status": 401, "times": 1})
                injected = True
            sent += len(piece)
            yield piece

    with fenced():
        staged = await vertex.storage.upload(
            vertex.auth(), BUCKET, "again.jsonl", refused_once_under_way()
        )
    assert (staged.size, staged.crc32c) == (len(data), crc32c_of(data))
    # The start, the first chunk, the second refused then sent again, the last.
    assert await vertex.upstream.requests(INSERTS) == 5
