"""The Cloud Storage JSON API's object methods (``/storage/v1``, ``/upload``, ``/download``).

Enough of the API for google-cloud-storage and plain HTTP callers to upload training files
(media, multipart and resumable uploads, streamed to disk), read them back (metadata, or
the bytes with ``Range``), copy them server-side (``rewriteTo``, ``copyTo``), list and
delete them. Errors use the JSON API's envelope (``emulator.storage_errors``). Buckets are
not created: with ``EmulatorConfig.storage_buckets`` unset every well-formed bucket name
exists, otherwise only those named do.

Resumable session requests (``PUT`` to the session URI) need no ``Authorization``: as at
Google, the ``upload_id`` is the credential. Every session request is a request of
``storage.objects.insert``, so fault rules on that route apply to each chunk in turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from emulator import routes, storage_errors, storage_params, storage_streams
from emulator.errors import JsonObject
from emulator.oauth import authorize
from emulator.routes import Route
from emulator.state import EmulatorState, state_of
from emulator.storage_objects import StoredObject
from emulator.storage_params import ContentRange, Preconditions
from emulator.storage_resource import object_resource, rewrite_response
from emulator.storage_uploads import UploadSession, UploadTarget, copied_metadata, parse_goog_hash

UPLOAD_PATH = "/upload/storage/v1/b/{bucket}/o"


async def insert(request: web.Request) -> web.StreamResponse:
    """``POST /upload/storage/v1/b/{bucket}/o?uploadType=media|multipart|resumable``."""
    bucket = _authorized_bucket(request, routes.STORAGE_INSERT)
    upload_type = request.query.get("uploadType")
    if upload_type == "media":
        return await _insert_media(request, bucket)
    if upload_type == "multipart":
        return await _insert_multipart(request, bucket)
    if upload_type == "resumable":
        return await _start_resumable(request, bucket)
    raise storage_errors.invalid(f"Unsupported uploadType: {str(upload_type)[:40]!r}.")


async def _insert_media(request: web.Request, bucket: str) -> web.Response:
    """The body is the object's bytes; ``name`` and the preconditions are in the query."""
    target = UploadTarget(
        bucket,
        storage_params.object_name(request.query.get("name")),
        request.content_type,
        preconditions=Preconditions.from_query(request.query),
    )
    return await _write_whole(request, target, storage_streams.request_chunks(request))


async def _insert_multipart(request: web.Request, bucket: str) -> web.Response:
    """A ``multipart/related`` body: the object resource (JSON), then the bytes."""
    resource, media = await storage_streams.multipart_related(request)
    target = UploadTarget.from_resource(
        bucket,
        resource,
        name=request.query.get("name"),
        content_type=media.headers.get("Content-Type"),
        preconditions=Preconditions.from_query(request.query),
    )
    return await _write_whole(request, target, storage_streams.part_chunks(media))


async def _write_whole(
    request: web.Request, target: UploadTarget, chunks: AsyncIterator[bytes]
) -> web.Response:
    """Stream one request's bytes into a new object (nothing is written if anything fails).

    The preconditions are checked before the bytes are read, to refuse early, and again
    when the object is written, which is the check that counts.
    """
    state = state_of(request)
    target.preconditions.check(state.objects.get(target.bucket, target.name))
    body = state.objects.new_body()
    try:
        await storage_streams.receive(chunks, body, state.config.storage_max_object_bytes)
    except BaseException:
        body.discard()
        raise
    stored = target.commit(state.objects, body, state.clock())
    return _resource_response(request, stored)


async def _start_resumable(request: web.Request, bucket: str) -> web.Response:
    """Open a session; the answer's ``Location`` is the session URI to ``PUT`` chunks to."""
    state = state_of(request)
    resource = await storage_streams.read_resource(storage_streams.request_chunks(request))
    target = UploadTarget.from_resource(
        bucket,
        resource,
        name=request.query.get("name"),
        content_type=request.headers.get("X-Upload-Content-Type"),
        preconditions=Preconditions.from_query(request.query),
    )
    total = _declared_total(request, state)
    target.preconditions.check(state.objects.get(target.bucket, target.name))
    session = state.uploads.start(target, state.objects.new_body(), total)
    location = request.url.with_path(UPLOAD_PATH.format(bucket=bucket)).with_query(
        uploadType="resumable", upload_id=session.upload_id
    )
    return web.Response(status=200, headers={"Location": str(location)})


def _declared_total(request: web.Request, state: EmulatorState) -> int | None:
    """``X-Upload-Content-Length``, if the caller gave the size up front (413 if too big)."""
    total = storage_params.int_param(request.headers, "X-Upload-Content-Length")
    if total is not None and total > state.config.storage_max_object_bytes:
        raise storage_errors.too_large(state.config.storage_max_object_bytes)
    return total


async def put_chunk(request: web.Request) -> web.StreamResponse:
    """``PUT`` to a session URI: append a chunk, or (``bytes */...``) ask how far it got.

    Answers 308 with ``Range: bytes=0-N`` (no ``Range`` when no byte is held) while bytes
    are missing, and 200 with the object once the last byte is in.
    """
    state = state_of(request)
    session = state.uploads.get(request.query.get("upload_id", ""))
    if session.target.bucket != request.match_info["bucket"]:
        raise storage_errors.upload_not_found()
    async with session.lock:
        if session.result is not None:
            return _resource_response(request, session.result)
        if session.body is None:  # dropped while this request waited for the lock
            raise storage_errors.upload_not_found()
        content_range = ContentRange.parse(request.headers.get("Content-Range"))
        _learn_total(session, content_range)
        if content_range.first is not None:
            await _append(request, state, session, content_range)
        if session.total is not None and session.received == session.total:
            return _finish(request, state, session)
        return _incomplete(session)


def _learn_total(session: UploadSession, content_range: ContentRange) -> None:
    """Record the upload's size once a chunk states it (400 if it changes)."""
    if content_range.total is None:
        return
    if session.total is not None and session.total != content_range.total:
        raise storage_errors.invalid(
            f"The upload's total size changed from {session.total} to {content_range.total}."
        )
    if content_range.total < session.received:
        raise storage_errors.invalid("The stated total is smaller than the bytes received.")
    session.total = content_range.total


async def _append(
    request: web.Request, state: EmulatorState, session: UploadSession, chunk: ContentRange
) -> None:
    """Append the chunk's new bytes: those already held (a retried chunk) are skipped."""
    assert chunk.first is not None and chunk.last is not None and session.body is not None
    if chunk.first > session.received:
        raise storage_errors.invalid(
            f"The chunk starts at byte {chunk.first}, but only {session.received} bytes "
            "have been received; query the upload's status and resume from there."
        )
    if session.total is not None and chunk.last >= session.total:
        raise storage_errors.invalid("The chunk ends beyond the upload's total size.")
    max_bytes = state.config.storage_max_object_bytes
    if chunk.last >= max_bytes:
        raise storage_errors.too_large(max_bytes)
    skip, end = session.received - chunk.first, chunk.last + 1
    async for received in storage_streams.request_chunks(request):
        data, skip = received[skip:], max(skip - len(received), 0)
        if session.body.size + len(data) > end:
            raise storage_errors.invalid("The chunk is longer than its Content-Range.")
        session.body.write(data)


def _finish(request: web.Request, state: EmulatorState, session: UploadSession) -> web.Response:
    """Commit the session's bytes as the object (checksums of the last chunk, preconditions)."""
    assert session.body is not None
    target = session.target.with_hashes(parse_goog_hash(request.headers.get("x-goog-hash")))
    try:
        stored = target.commit(state.objects, session.body, state.clock())
    except BaseException:
        state.uploads.drop(session)
        raise
    state.uploads.finish(session, stored)
    return _resource_response(request, stored)


def _incomplete(session: UploadSession) -> web.Response:
    headers = {"Range": f"bytes=0-{session.received - 1}"} if session.received else {}
    return web.Response(status=308, headers=headers)


async def cancel_upload(request: web.Request) -> web.Response:
    """``DELETE`` a session URI: drop the session and its bytes; 499, as Google answers."""
    state = state_of(request)
    session = state.uploads.get(request.query.get("upload_id", ""))
    async with session.lock:  # never under a chunk being written
        if session.body is None or session.target.bucket != request.match_info["bucket"]:
            raise storage_errors.upload_not_found()
        state.uploads.drop(session)
    return web.Response(status=499)


async def get_object(request: web.Request) -> web.StreamResponse:
    """``GET /storage/v1/b/{bucket}/o/{object}``: the resource, or with ``alt=media`` bytes."""
    if request.query.get("alt") == "media":
        return await download(request)
    stored = _authorized_object(request, routes.STORAGE_GET)
    return _resource_response(request, stored)


async def download(request: web.Request) -> web.StreamResponse:
    """``GET /download/storage/v1/b/{bucket}/o/{object}?alt=media``: the bytes, streamed.

    ``Range: bytes=a-b`` answers 206 with that slice; ``x-goog-hash`` always carries the
    whole object's CRC32C and MD5, as Google sends them.
    """
    state = state_of(request)
    stored = _authorized_object(request, routes.STORAGE_GET)
    byte_range = storage_params.byte_range(request.headers.get("Range"), stored.size)
    return await storage_streams.send_object(request, state.objects, stored, byte_range)


async def delete(request: web.Request) -> web.Response:
    """``DELETE /storage/v1/b/{bucket}/o/{object}``: 204."""
    stored = _authorized_object(request, routes.STORAGE_DELETE)
    state_of(request).objects.delete(stored.bucket, stored.name)
    return web.Response(status=204)


async def rewrite(request: web.Request) -> web.Response:
    """``POST /storage/v1/b/{b}/o/{o}/rewriteTo/b/{db}/o/{do}``: a ``storage#rewriteResponse``.

    Every rewrite is done in one call (``done: true``, no ``rewriteToken`` to come back
    with): a ``rewriteToken`` or ``maxBytesRewrittenPerCall`` the caller sends is ignored.
    """
    copied = await _copy(request, routes.STORAGE_REWRITE)
    return web.json_response(rewrite_response(copied, _base_url(request)))


async def copy(request: web.Request) -> web.Response:
    """``POST /storage/v1/b/{b}/o/{o}/copyTo/b/{db}/o/{do}``: the new object's resource."""
    return _resource_response(request, await _copy(request, routes.STORAGE_COPY))


async def _copy(request: web.Request, route: Route) -> StoredObject:
    """Copy the path's source object to its destination; the optional JSON body is the
    destination's metadata (``contentType``, ``metadata``; the source's where absent).

    404 for a missing source (``sourceGeneration``: that generation); 412 if an
    ``ifSource*`` precondition fails on the source or an ``if*`` one on the destination
    (``ifGenerationMatch=0``: it must not exist).
    """
    authorize(request, route)
    resource = await storage_streams.read_resource(storage_streams.request_chunks(request))
    # No await from here on, so neither object can change between its checks and the copy.
    source = _found_object(request, source=True)
    bucket = _known_bucket(request, request.match_info["destinationBucket"])
    name = storage_params.object_name(request.match_info["destinationObject"])
    state = state_of(request)
    Preconditions.from_query(request.query).check(state.objects.get(bucket, name))
    content_type, metadata = copied_metadata(source, resource)
    return state.objects.copy(
        source, bucket, name, now=state.clock(), content_type=content_type, metadata=metadata
    )


async def list_objects(request: web.Request) -> web.Response:
    """``GET /storage/v1/b/{bucket}/o?prefix&delimiter&maxResults&pageToken``, in name order.

    With a ``delimiter``, names that hold it after the prefix are rolled up into
    ``prefixes`` (each counted as one entry of the page).
    """
    bucket = _authorized_bucket(request, routes.STORAGE_LIST)
    page = storage_params.ListPage.from_query(request.query)
    found = state_of(request).objects.list(bucket, page.prefix)
    chosen, next_token = page.select(_list_entries(found, page.prefix, page.delimiter))
    body: JsonObject = {"kind": "storage#objects"}
    if next_token:
        body["nextPageToken"] = next_token
    prefixes = [key for key, item in chosen if item is None]
    if prefixes:
        body["prefixes"] = prefixes
    base_url = _base_url(request)
    items = [object_resource(item, base_url) for _, item in chosen if item is not None]
    if items:
        body["items"] = items
    return web.json_response(body)


def _list_entries(
    found: list[StoredObject], prefix: str, delimiter: str
) -> list[tuple[str, StoredObject | None]]:
    """(name, object) for each object, or (rolled-up prefix, None) for each prefix, sorted."""
    entries: dict[str, StoredObject | None] = {}
    for stored in found:
        cut = stored.name.find(delimiter, len(prefix)) if delimiter else -1
        if cut < 0:
            entries[stored.name] = stored
        else:
            entries[stored.name[: cut + len(delimiter)]] = None
    return sorted(entries.items())


async def inspect_objects(request: web.Request) -> web.Response:
    """``GET /_emulator/storage/objects``: every object of every bucket (no auth)."""
    objects = state_of(request).objects.everything()
    return web.json_response({"objects": [_inspected(stored) for stored in objects]})


async def inspect_uploads(request: web.Request) -> web.Response:
    """``GET /_emulator/storage/uploads``: open and recently finished resumable sessions."""
    return web.json_response({"uploads": state_of(request).uploads.listing()})


def _inspected(stored: StoredObject) -> JsonObject:
    return {
        "bucket": stored.bucket,
        "name": stored.name,
        "generation": str(stored.generation),
        "size": stored.size,
        "crc32c": stored.crc32c,
        "md5Hash": stored.md5_hash,
        "contentType": stored.content_type,
    }


def _authorized_bucket(request: web.Request, route: Route) -> str:
    """The path's bucket, once the caller is authorized: 400 if malformed, 404 if absent."""
    authorize(request, route)
    return _known_bucket(request, request.match_info["bucket"])


def _known_bucket(request: web.Request, raw: str) -> str:
    """A bucket name that is well formed (400) and exists (404)."""
    bucket = storage_params.bucket_name(raw)
    buckets = state_of(request).config.storage_buckets
    if buckets is not None and bucket not in buckets:
        raise storage_errors.bucket_not_found(bucket)
    return bucket


def _authorized_object(request: web.Request, route: Route) -> StoredObject:
    """The path's object, once the caller is authorized (see `_found_object`)."""
    authorize(request, route)
    return _found_object(request)


def _found_object(request: web.Request, *, source: bool = False) -> StoredObject:
    """The path's object, checked against ``generation`` and the ``if*`` preconditions, or
    for a copy's source (``source``) ``sourceGeneration`` and ``ifSource*`` (404, 412).
    """
    bucket = _known_bucket(request, request.match_info["bucket"])
    name = storage_params.object_name(request.match_info["object"])
    stored = state_of(request).objects.get(bucket, name)
    wanted = storage_params.int_param(request.query, "sourceGeneration" if source else "generation")
    if stored is None or wanted not in (None, stored.generation):
        raise storage_errors.object_not_found(bucket, name)
    Preconditions.from_query(request.query, source=source).check(stored)
    return stored


def _resource_response(request: web.Request, stored: StoredObject) -> web.Response:
    return web.json_response(object_resource(stored, _base_url(request)))


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"
