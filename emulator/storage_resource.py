"""The JSON API's object resource, the answer of a rewrite, and the headers of a download.

int64 fields (``generation``, ``metageneration``, ``size``) are strings, timestamps RFC 3339
with milliseconds and ``Z``, as Cloud Storage writes them. Links point back at the host the
request came to, so a client configured with the emulator's endpoint follows them there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from emulator.errors import JsonObject
from emulator.storage_objects import StoredObject


def object_resource(stored: StoredObject, base_url: str) -> JsonObject:
    """The ``storage#object`` resource of one object generation."""
    path = f"/b/{stored.bucket}/o/{quote(stored.name, safe='')}"
    created = rfc3339_millis(stored.create_time)
    resource: JsonObject = {
        "kind": "storage#object",
        "id": f"{stored.bucket}/{stored.name}/{stored.generation}",
        "selfLink": f"{base_url}/storage/v1{path}",
        "mediaLink": f"{base_url}/download/storage/v1{path}?generation={stored.generation}"
        "&alt=media",
        "name": stored.name,
        "bucket": stored.bucket,
        "generation": str(stored.generation),
        "metageneration": str(stored.metageneration),
        "contentType": stored.content_type,
        "storageClass": "STANDARD",
        "size": str(stored.size),
        "md5Hash": stored.md5_hash,
        "crc32c": stored.crc32c,
        "etag": etag(stored),
        "timeCreated": created,
        "updated": created,
        "timeStorageClassUpdated": created,
    }
    if stored.metadata:
        resource["metadata"] = dict(stored.metadata)
    return resource


def rewrite_response(stored: StoredObject, base_url: str) -> JsonObject:
    """The ``storage#rewriteResponse`` of a rewrite finished in one call (no ``rewriteToken``)."""
    return {
        "kind": "storage#rewriteResponse",
        "totalBytesRewritten": str(stored.size),
        "objectSize": str(stored.size),
        "done": True,
        "resource": object_resource(stored, base_url),
    }


def download_headers(stored: StoredObject) -> dict[str, str]:
    """The headers Cloud Storage sends with an object's bytes (the client checks the hash)."""
    return {
        "Content-Type": stored.content_type,
        "ETag": etag(stored),
        "x-goog-hash": f"crc32c={stored.crc32c},md5={stored.md5_hash}",
        "x-goog-generation": str(stored.generation),
        "x-goog-metageneration": str(stored.metageneration),
        "x-goog-stored-content-length": str(stored.size),
        "x-goog-stored-content-encoding": "identity",
        "Accept-Ranges": "bytes",
    }


def etag(stored: StoredObject) -> str:
    """An entity tag that changes with every generation and metageneration."""
    return f'"{stored.generation:x}-{stored.metageneration}"'


def rfc3339_millis(epoch_s: float) -> str:
    """``2026-11-21T13:40:00.000Z``: UTC with exactly three fractional digits."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
