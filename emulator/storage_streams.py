"""Moving object bytes between HTTP and body files without holding them in memory.

Upload bodies are read from the request stream in chunks of `CHUNK_BYTES` and written as
they come (aiohttp's ``client_max_size`` bounds only ``request.read()``, never used here for
media); downloads are written from the file in chunks of the same size. Only the small
JSON parts (an object resource) are read whole, each under `MAX_RESOURCE_BYTES`.

File reads and writes are synchronous on the event loop: each is one chunk on a local disk,
short next to the network wait around it, and a thread hop per chunk would cost more.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, ClientPayloadError, web

from emulator import storage_errors
from emulator.errors import ApiError, JsonObject
from emulator.storage_objects import BodyWriter, ObjectStore, StoredObject
from emulator.storage_resource import download_headers

CHUNK_BYTES = 256 * 1024
MAX_RESOURCE_BYTES = 64 * 1024


def client_gone() -> ApiError:
    """The caller's connection broke mid-body; no one hears this answer."""
    return ApiError(499, "The client closed the connection before the body ended.")


async def request_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body in chunks; a broken connection ends it with :func:`client_gone`."""
    try:
        async for chunk in request.content.iter_chunked(CHUNK_BYTES):
            yield chunk
    except (ConnectionError, ClientPayloadError) as exc:
        raise client_gone() from exc


async def part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    """One multipart part's bytes in chunks (a broken connection as in `request_chunks`)."""
    try:
        while chunk := await part.read_chunk(CHUNK_BYTES):
            yield chunk
    except (ConnectionError, ClientPayloadError) as exc:
        raise client_gone() from exc


async def receive(chunks: AsyncIterator[bytes], body: BodyWriter, max_bytes: int) -> None:
    """Append every chunk to ``body``; 413 once it would pass ``max_bytes``."""
    async for chunk in chunks:
        if body.size + len(chunk) > max_bytes:
            raise storage_errors.too_large(max_bytes)
        body.write(chunk)


async def read_resource(chunks: AsyncIterator[bytes]) -> JsonObject:
    """A JSON object resource (``{}`` when empty); 400 if malformed or over 64 KiB."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > MAX_RESOURCE_BYTES:
            raise storage_errors.invalid(f"Object metadata exceeds {MAX_RESOURCE_BYTES} bytes.")
    if not data.strip():
        return {}
    try:
        resource = json.loads(bytes(data))
    except ValueError as exc:
        raise storage_errors.invalid(f"Invalid JSON object metadata: {exc}") from exc
    if not isinstance(resource, dict):
        raise storage_errors.invalid("Invalid JSON object metadata: expected an object.")
    return resource


async def multipart_related(request: web.Request) -> tuple[JsonObject, BodyPartReader]:
    """The two parts of a ``multipart/related`` upload: the resource and the media part."""
    if not request.content_type.startswith("multipart/"):
        raise storage_errors.invalid("A multipart upload needs a multipart/related body.")
    try:
        reader = await request.multipart()
        first = await reader.next()
        if not isinstance(first, BodyPartReader):
            raise storage_errors.invalid("The multipart body has no metadata part.")
        resource = await read_resource(part_chunks(first))
        media = await reader.next()
    except (ValueError, AssertionError) as exc:  # aiohttp's malformed-multipart errors
        raise storage_errors.invalid(f"Malformed multipart body: {exc}") from exc
    if not isinstance(media, BodyPartReader):
        raise storage_errors.invalid("The multipart body has no media part.")
    return resource, media


async def send_object(
    request: web.Request,
    store: ObjectStore,
    stored: StoredObject,
    byte_range: tuple[int, int] | None,
) -> web.StreamResponse:
    """Stream the object's bytes (all, or the inclusive ``byte_range`` with 206)."""
    first, last = byte_range or (0, stored.size - 1)
    response = web.StreamResponse(status=206 if byte_range else 200)
    response.headers.update(download_headers(stored))
    if byte_range:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{stored.size}"
    response.content_length = last - first + 1
    with store.open(stored) as source:  # opened at once: a later replace unlinks the file
        await response.prepare(request)
        source.seek(first)
        remaining = last - first + 1
        while remaining > 0 and (chunk := source.read(min(CHUNK_BYTES, remaining))):
            await response.write(chunk)
            remaining -= len(chunk)
    await response.write_eof()
    return response
