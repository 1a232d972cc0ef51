"""A Cloud Storage JSON API client: create-only uploads, ranged downloads, rewrites.

Every upload is create-only (`ifGenerationMatch=0`), so a retried upload can never
replace an object: a 412 answers that the name is taken. A job's training file is named
after the job, and a retry of the same job writes the same bytes, so a 412 most likely
means an earlier attempt already wrote it; that is verified, not assumed: the object's
CRC32C must be the one of what this attempt meant to write (it is computed as the bytes
go by, even those not sent), else the upload fails saying so.

Bodies are streamed from an iterator (plain or async) of chunks: up to
`MULTIPART_MAX_BYTES` (8 MiB, as google-cloud-storage does) the whole body goes in one
request; above it, a resumable upload sends it `RESUMABLE_CHUNK_BYTES` at a time, each
request's body made of the chunks as they came (no copy), holding only the chunk being
sent, never the whole body. Only the last request may state the total size: a short one
is the last, and a body that ends on a full one is finished by an empty request. The
worker's writes are fenced by its lease; the API's, which holds none, are not
(core.upstream_http).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import google_crc32c
import yarl

from core.errors import UpstreamError, UpstreamNotFound, UpstreamRejected, UpstreamRetryable
from core.runtime.metrics import Metrics
from core.security.token_source import TokenSource
from core.upstream_http import (
    Answer,
    Fence,
    Json,
    Limiter,
    UpstreamHttp,
    error_from_response,
)

DEFAULT_BASE_URL = "https://storage.googleapis.com"
MULTIPART_MAX_BYTES = 8 * 1024 * 1024
"""The largest body sent in one request; larger ones go resumable."""
RESUMABLE_CHUNK_BYTES = 8 * 1024 * 1024
"""Bytes per request of a resumable upload: a multiple of 256 KiB, as the API requires."""
DOWNLOAD_PIECE_BYTES = 8 * 1024 * 1024
"""Bytes per ranged read of a download: what a reader holds at once."""
GS_PREFIX = "gs://"
PRECONDITION_FAILED = 412
RESUME_INCOMPLETE = 308
CANCELLED = 499


@dataclass(frozen=True)
class StagedObject:
    """An object as written (or as found written by an earlier attempt)."""

    @classmethod
    def from_uri(
        cls, uri: str, *, size: int = -1, crc32c: str = "", generation: str = ""
    ) -> StagedObject:
        """The object `gs://bucket/name` names; ValueError if `uri` is not one."""
        bucket, _, name = uri.removeprefix(GS_PREFIX).partition("/")
        if not uri.startswith(GS_PREFIX) or not bucket or not name:
            raise ValueError(f"not a gs://bucket/name URI: {uri[:80]!r}")
        return cls(bucket, name, size, crc32c)

    bucket: str
    name: str
    size: int
    crc32c: str
    """Big-endian CRC32C, base64, as the JSON API gives it."""
    generation: str = ""

    @property
    def uri(self) -> str:
        return f"{GS_PREFIX}{self.bucket}/{self.name}"


class _Checksummed:
    """The body's chunks, regrouped in pieces of a chosen size; CRC32C and size counted
    over what was read of it. The chunks may come from a plain or an async iterable: an
    upload streamed as it is received reads its source only as fast as it sends."""

    def __init__(self, chunks: Iterable[bytes] | AsyncIterable[bytes]) -> None:
        self._chunks: AsyncIterator[bytes] = _async_iter(chunks)
        self._rest: bytes | memoryview = b""
        self.crc = 0
        self.size = 0

    async def take(self, size_bytes: int) -> bytes:
        """The next `size_bytes` of the body (fewer only at its end), in one piece."""
        return b"".join((await self.take_pieces(size_bytes)).pieces)

    async def take_pieces(self, size_bytes: int) -> _Pieces:
        """The next `size_bytes` of the body (fewer only at its end), as the chunks came:
        a long upload never copies them into requests of its own."""
        pieces, held = ([self._rest] if len(self._rest) else []), len(self._rest)
        self._rest = b""
        while held < size_bytes and (chunk := await anext(self._chunks, None)) is not None:
            self.crc = google_crc32c.extend(self.crc, chunk)
            self.size += len(chunk)
            pieces.append(chunk)
            held += len(chunk)
        if held > size_bytes:  # the last piece goes over: its tail comes next
            last = memoryview(pieces.pop())
            keep = len(last) - (held - size_bytes)
            pieces.append(last[:keep])
            self._rest = last[keep:]
        return _Pieces(pieces)

    def unread(self, data: bytes) -> None:
        """Put back what was taken (before anything else was taken): it comes next."""
        self._rest = data + self._rest

    async def drain(self) -> None:
        """Read what was not taken, to know what the whole body would have been."""
        while await self.take(RESUMABLE_CHUNK_BYTES):
            pass

    def crc32c(self) -> str:
        return base64.b64encode(self.crc.to_bytes(4, "big")).decode()


class _Pieces:
    """One request's body as pieces, sent as they are (iterated again if the request is
    sent again, after a token refresh). Its Content-Length is given, so it is not sent
    chunked."""

    def __init__(self, pieces: list[bytes | memoryview]) -> None:
        self.pieces = pieces
        self.size = sum(map(len, pieces))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield bytes(piece) if isinstance(piece, memoryview) else piece


async def _async_iter(chunks: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk


class StorageClient:
    """Objects of Cloud Storage buckets: create-only upload, metadata, delete."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str = DEFAULT_BASE_URL,
        limiter: Limiter | None = None,
        metrics: Metrics | None = None,
        fence: Fence,
    ) -> None:
        """`fence` checks each write (the worker's: its lease; the API's: none)."""
        self._base = base_url.rstrip("/")
        self._api = UpstreamHttp(http, self._base, _route, limiter, metrics, fence=fence)

    async def upload(
        self,
        auth: TokenSource,
        bucket: str,
        name: str,
        chunks: Iterable[bytes] | AsyncIterable[bytes],
        content_type: str = "application/jsonl",
    ) -> StagedObject:
        """Write a new object from `chunks`; if the name is taken, accept the object there
        only if it holds the same bytes (by CRC32C and size), else UpstreamRejected.

        An exception from `chunks` ends the upload with nothing written: the object exists
        only once its last chunk is sent (a resumable session is cancelled, best effort;
        Cloud Storage drops an unfinished one after a week anyway)."""
        body = _Checksummed(chunks)
        first = await body.take(MULTIPART_MAX_BYTES + 1)
        target = _Target(bucket, name, content_type)
        if len(first) <= MULTIPART_MAX_BYTES:
            answer = await self._upload_media(auth, target, first)
        else:
            body.unread(first)
            del first  # a long upload holds only the chunks in flight (`_send_session`)
            answer = await self._upload_resumable(auth, target, body)
        if answer is None:  # The name is taken: by an earlier attempt of ours?
            await body.drain()
            answer = await self.get_metadata(auth, bucket, name)
        return _checked(target, answer, body)

    async def get_metadata(self, auth: TokenSource, bucket: str, name: str) -> Json:
        return await self._api.call(auth, "GET", _object_path(bucket, name))

    async def exists(self, auth: TokenSource, bucket: str, name: str) -> bool:
        try:
            await self.get_metadata(auth, bucket, name)
        except UpstreamNotFound:
            return False
        return True

    async def download(
        self, auth: TokenSource, bucket: str, name: str, *, piece_bytes: int = DOWNLOAD_PIECE_BYTES
    ) -> AsyncIterator[bytes]:
        """The object's bytes, `piece_bytes` at a time (ranged reads of one generation: a
        rewrite of the name meanwhile fails the read rather than mixing two bodies)."""
        answer = await self.get_metadata(auth, bucket, name)
        size, generation = int(answer.get("size", 0)), str(answer.get("generation", ""))
        path, params = _object_path(bucket, name), {"alt": "media", "generation": generation}
        for start in range(0, size, piece_bytes):
            end = min(start + piece_bytes, size) - 1
            headers = {"Range": f"bytes={start}-{end}"}
            response = await self._api.request(auth, "GET", path, params=params, headers=headers)
            yield response.content

    async def rewrite(
        self, auth: TokenSource, source: StagedObject, bucket: str, name: str
    ) -> StagedObject:
        """Copy `source` to a new object, server-side and create-only; if the name is taken,
        accept the object there only if it holds the source's bytes, else UpstreamRejected."""
        path = (
            _object_path(source.bucket, source.name) + "/rewriteTo" + _bucket_object(bucket, name)
        )
        params = {"ifGenerationMatch": "0"}
        if source.generation:
            params["sourceGeneration"] = source.generation
        response = await self._api.request(
            auth, "POST", path, effect=True, passing=(PRECONDITION_FAILED,), params=params
        )
        if response.status_code == PRECONDITION_FAILED:
            resource = await self.get_metadata(auth, bucket, name)
        else:
            resource = _json(response).get("resource", {})
        copied = _staged(bucket, name, resource)
        if (copied.crc32c, copied.size) != (source.crc32c, source.size):
            raise UpstreamRejected(f"{copied.uri} holds other bytes than {source.uri}")
        return copied

    async def delete(self, auth: TokenSource, bucket: str, name: str) -> None:
        """Delete the object; succeeds if it is already gone."""
        try:
            await self._api.call(auth, "DELETE", _object_path(bucket, name), effect=True)
        except UpstreamNotFound:
            return

    async def _upload_media(self, auth: TokenSource, target: _Target, data: bytes) -> Json | None:
        """The whole body in one request; None if the name is taken."""
        headers = {"Content-Type": target.content_type, "Content-Length": str(len(data))}
        body = _Pieces([data])  # sent as it is, where aiohttp would warn of a large `bytes`
        response = await self._post_upload(auth, target, "media", headers=headers, content=body)
        return None if response.status_code == PRECONDITION_FAILED else _json(response)

    async def _post_upload(
        self, auth: TokenSource, target: _Target, upload_type: str, **request: Any
    ) -> Answer:
        """POST to the bucket's upload path, create-only: a 412 is answered, not raised."""
        return await self._api.request(
            auth,
            "POST",
            _upload_path(target.bucket),
            effect=True,
            passing=(PRECONDITION_FAILED,),
            params=target.params(upload_type),
            **request,
        )

    async def _upload_resumable(
        self, auth: TokenSource, target: _Target, body: _Checksummed
    ) -> Json | None:
        """A resumable session, then the body chunk by chunk; None if the name is taken."""
        session = await self._start_session(auth, target)
        if session is None:
            return None
        try:
            return await self._send_session(auth, session, body)
        except BaseException:
            with contextlib.suppress(UpstreamError):
                await asyncio.shield(self._cancel_session(auth, session))
            raise

    async def _send_session(
        self, auth: TokenSource, session: str, body: _Checksummed
    ) -> Json | None:
        """The body a chunk at a time, holding only the chunk being sent. Only the last
        chunk may state the total size, and a full chunk can't know it is the last: a
        short one is, and a body that ends on a full chunk is finished by an empty one
        (`bytes */{total}`, as the resumable protocol allows)."""
        offset = 0
        while True:
            chunk = await body.take_pieces(RESUMABLE_CHUNK_BYTES)
            last = chunk.size < RESUMABLE_CHUNK_BYTES
            response = await self._put_chunk(auth, session, chunk, offset, body.size, last)
            if response.status_code == PRECONDITION_FAILED:
                return None
            if response.status_code != RESUME_INCOMPLETE:
                return _json(response)
            offset = _persisted(response, offset + chunk.size)
            if last:
                raise UpstreamRetryable("the upload session did not finish on its last chunk")

    async def _cancel_session(self, auth: TokenSource, session: str) -> None:
        """Drop an unfinished resumable upload (Cloud Storage answers 499)."""
        await self._api.request(auth, "DELETE", session, effect=True, passing=(CANCELLED,))

    async def _start_session(self, auth: TokenSource, target: _Target) -> str | None:
        response = await self._post_upload(
            auth,
            target,
            "resumable",
            headers={"X-Upload-Content-Type": target.content_type},
            json={"name": target.name, "contentType": target.content_type},
        )
        if response.status_code == PRECONDITION_FAILED:
            return None
        location = response.headers.get("location")
        if not location:
            raise UpstreamRetryable("a resumable upload began without a session URI")
        return str(yarl.URL(self._base).join(yarl.URL(location, encoded=True)))

    async def _put_chunk(  # noqa: PLR0917 (one request's parts)
        self, auth: TokenSource, session: str, chunk: _Pieces, offset: int, size: int, last: bool
    ) -> Answer:
        total = str(size) if last else "*"
        first_to_last = f"{offset}-{offset + chunk.size - 1}" if chunk.size else "*"
        headers = {"Content-Range": f"bytes {first_to_last}/{total}"}
        return await self._api.request(
            auth,
            "PUT",
            session,
            effect=True,
            passing=(PRECONDITION_FAILED,),
            headers=headers | {"Content-Length": str(chunk.size)},
            content=chunk,
        )


@dataclass(frozen=True)
class _Target:
    bucket: str
    name: str
    content_type: str

    def params(self, upload_type: str) -> dict[str, str]:
        """Create-only: generation 0 matches only an object that does not exist."""
        return {"uploadType": upload_type, "name": self.name, "ifGenerationMatch": "0"}


def _staged(bucket: str, name: str, resource: Json) -> StagedObject:
    """The object as the JSON API's resource describes it."""
    return StagedObject(
        bucket,
        name,
        int(resource.get("size", -1)),
        str(resource.get("crc32c", "")),
        str(resource.get("generation", "")),
    )


def _checked(target: _Target, answer: Json, body: _Checksummed) -> StagedObject:
    """The object as the API describes it, if it holds what was meant to be written."""
    found = _staged(target.bucket, target.name, answer)
    if (found.crc32c, found.size) != (body.crc32c(), body.size):
        raise UpstreamRejected(
            f"{found.uri} holds other bytes than this upload's (crc32c {found.crc32c}, "
            f"{found.size} bytes; meant: crc32c {body.crc32c()}, {body.size} bytes): "
            "an object of that name was written by something else; it is left as it is"
        )
    return found


def _persisted(response: Answer, sent_to: int) -> int:
    """The offset the session has stored up to, from a 308's Range (`bytes=0-N`).

    A server that kept less than was sent would need the rest sent again; this client
    holds only the chunk in hand, so it takes that as a transient failure of the upload.
    """
    match = re.fullmatch(r"bytes=0-(\d+)", response.headers.get("range", ""))
    stored = int(match.group(1)) + 1 if match else 0
    if stored != sent_to:
        raise UpstreamRetryable(f"the upload session kept {stored} of {sent_to} bytes")
    return stored


def _json(response: Answer) -> Json:
    if not response.is_success:
        raise error_from_response(response)
    answer: Json = response.json() if response.content else {}
    return answer


def _upload_path(bucket: str) -> str:
    return f"/upload/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o"


def _object_path(bucket: str, name: str) -> str:
    return "/storage/v1" + _bucket_object(bucket, name)


def _bucket_object(bucket: str, name: str) -> str:
    quoted = urllib.parse.quote(name, safe="")
    return f"/b/{urllib.parse.quote(bucket, safe='')}/o/{quoted}"


_IDS = re.compile(r"/(b|o)/[^/]+")


def _route(path: str) -> str:
    """`/storage/v1/b/*/o/*`: the path without its bucket and object names."""
    return _IDS.sub(r"/\1/*", path)
