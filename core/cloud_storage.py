"""A Cloud Storage JSON API client for staging training files: create-only uploads.

Every upload is create-only (`ifGenerationMatch=0`), so a retried upload can never
replace an object: a 412 answers that the name is taken. A job's training file is named
after the job, and a retry of the same job writes the same bytes, so a 412 most likely
means an earlier attempt already wrote it; that is verified, not assumed: the object's
CRC32C must be the one of what this attempt meant to write (it is computed as the bytes
go by, even those not sent), else the upload fails saying so.

Bodies are streamed from an iterator of chunks: up to `MULTIPART_MAX_BYTES` (8 MiB, as
google-cloud-storage does) the whole body goes in one request; above it, a resumable
upload sends it `RESUMABLE_CHUNK_BYTES` at a time, holding the chunk being sent and the
next (read ahead: only the last chunk may state the total size), never the whole body.
Each request that writes is fenced, as every upstream side effect is (core.upstream_http).
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import google_crc32c
import httpx

from core.errors import UpstreamNotFound, UpstreamRejected, UpstreamRetryable
from core.runtime.metrics import Metrics
from core.security.token_source import TokenSource
from core.upstream_http import (
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
GS_PREFIX = "gs://"
PRECONDITION_FAILED = 412
RESUME_INCOMPLETE = 308


@dataclass(frozen=True)
class StagedObject:
    """An object as written (or as found written by an earlier attempt)."""

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
    over what was read of it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._rest = b""
        self.crc = 0
        self.size = 0

    def take(self, size_bytes: int) -> bytes:
        """The next `size_bytes` of the body (fewer only at its end)."""
        taken, self._rest = bytearray(self._rest), b""
        while len(taken) < size_bytes and (chunk := next(self._chunks, None)) is not None:
            self.crc = google_crc32c.extend(self.crc, chunk)
            self.size += len(chunk)
            taken += chunk
        self._rest = bytes(taken[size_bytes:])
        return bytes(taken[:size_bytes])

    def drain(self) -> None:
        """Read what was not taken, to know what the whole body would have been."""
        while self.take(RESUMABLE_CHUNK_BYTES):
            pass

    def crc32c(self) -> str:
        return base64.b64encode(self.crc.to_bytes(4, "big")).decode()


class StorageClient:
    """Objects of Cloud Storage buckets: create-only upload, metadata, delete."""

    def __init__(
        self,
        http: httpx.AsyncClient,
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
        chunks: Iterable[bytes],
        content_type: str = "application/jsonl",
    ) -> StagedObject:
        """Write a new object from `chunks`; if the name is taken, accept the object there
        only if it holds the same bytes (by CRC32C and size), else UpstreamRejected."""
        body = _Checksummed(chunks)
        first = body.take(MULTIPART_MAX_BYTES + 1)
        target = _Target(bucket, name, content_type)
        if len(first) <= MULTIPART_MAX_BYTES:
            answer = await self._upload_media(auth, target, first)
        else:
            answer = await self._upload_resumable(auth, target, first, body)
        if answer is None:  # The name is taken: by an earlier attempt of ours?
            body.drain()
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

    async def delete(self, auth: TokenSource, bucket: str, name: str) -> None:
        """Delete the object; succeeds if it is already gone."""
        try:
            await self._api.call(auth, "DELETE", _object_path(bucket, name), effect=True)
        except UpstreamNotFound:
            return

    async def _upload_media(self, auth: TokenSource, target: _Target, data: bytes) -> Json | None:
        """The whole body in one request; None if the name is taken."""
        headers = {"Content-Type": target.content_type}
        response = await self._post_upload(auth, target, "media", headers=headers, content=data)
        return None if response.status_code == PRECONDITION_FAILED else _json(response)

    async def _post_upload(
        self, auth: TokenSource, target: _Target, upload_type: str, **request: Any
    ) -> httpx.Response:
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
        self, auth: TokenSource, target: _Target, first: bytes, body: _Checksummed
    ) -> Json | None:
        """A resumable session, then the body chunk by chunk; None if the name is taken."""
        session = await self._start_session(auth, target)
        if session is None:
            return None
        chunk, pending, offset = first[:RESUMABLE_CHUNK_BYTES], first[RESUMABLE_CHUNK_BYTES:], 0
        while True:
            # Read ahead one chunk: a chunk is the last when nothing follows it, and only
            # the last one may say the total size.
            pending += body.take(RESUMABLE_CHUNK_BYTES - len(pending))
            response = await self._put_chunk(auth, session, chunk, offset, body.size, not pending)
            if response.status_code == PRECONDITION_FAILED:
                return None
            if response.status_code != RESUME_INCOMPLETE:
                return _json(response)
            offset = _persisted(response, offset + len(chunk))
            chunk, pending = pending, b""

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
        return str(httpx.URL(self._base).join(location))

    async def _put_chunk(  # noqa: PLR0917 (one request's parts)
        self, auth: TokenSource, session: str, chunk: bytes, offset: int, size: int, last: bool
    ) -> httpx.Response:
        total = str(size) if last else "*"
        span = f"bytes {offset}-{offset + len(chunk) - 1}/{total}"
        return await self._api.request(
            auth,
            "PUT",
            session,
            effect=True,
            passing=(PRECONDITION_FAILED,),
            headers={"Content-Range": span},
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


def _checked(target: _Target, answer: Json, body: _Checksummed) -> StagedObject:
    """The object as the API describes it, if it holds what was meant to be written."""
    found = StagedObject(
        target.bucket,
        target.name,
        int(answer.get("size", -1)),
        str(answer.get("crc32c", "")),
        str(answer.get("generation", "")),
    )
    if (found.crc32c, found.size) != (body.crc32c(), body.size):
        raise UpstreamRejected(
            f"{found.uri} holds other bytes than this upload's (crc32c {found.crc32c}, "
            f"{found.size} bytes; meant: crc32c {body.crc32c()}, {body.size} bytes): "
            "an object of that name was written by something else; it is left as it is"
        )
    return found


def _persisted(response: httpx.Response, sent_to: int) -> int:
    """The offset the session has stored up to, from a 308's Range (`bytes=0-N`).

    A server that kept less than was sent would need the rest sent again; this client
    holds only the chunk in hand, so it takes that as a transient failure of the upload.
    """
    match = re.fullmatch(r"bytes=0-(\d+)", response.headers.get("range", ""))
    stored = int(match.group(1)) + 1 if match else 0
    if stored != sent_to:
        raise UpstreamRetryable(f"the upload session kept {stored} of {sent_to} bytes")
    return stored


def _json(response: httpx.Response) -> Json:
    if not response.is_success:
        raise error_from_response(response)
    answer: Json = response.json() if response.content else {}
    return answer


def _upload_path(bucket: str) -> str:
    return f"/upload/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o"


def _object_path(bucket: str, name: str) -> str:
    quoted = urllib.parse.quote(name, safe="")
    return f"/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o/{quoted}"


_IDS = re.compile(r"/(b|o)/[^/]+")


def _route(path: str) -> str:
    """`/storage/v1/b/*/o/*`: the path without its bucket and object names."""
    return _IDS.sub(r"/\1/*", path)
