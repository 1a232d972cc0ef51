"""What an upload will write (`UploadTarget`), and the open resumable upload sessions.

A resumable upload (`uploadType=resumable`) is a session: the starting `POST` fixes the
object's name, metadata and preconditions and answers a session URI with an `upload_id`;
each `PUT` to that URI appends a chunk (`Content-Range: bytes a-b/total`) to the session's
body file, or asks how far it got (`bytes */total`). Every byte that arrives is kept, even
from a chunk whose connection broke, so a status query tells the caller where to resume;
bytes of a retried chunk that are already held are skipped. The object appears only when
the last byte is in (`commit`), so a reader never sees part of an upload.

Sessions are bounded: at most `MAX_OPEN_SESSIONS` may be open at once (each holds a file),
and the `MAX_FINISHED_SESSIONS` newest finished ones are remembered, so that a final chunk
sent again (its answer was lost) gets the object once more instead of a 404.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from emulator import storage_errors, storage_params
from emulator.errors import JsonObject
from emulator.storage_objects import BodyWriter, ObjectStore, StoredObject
from emulator.storage_params import Preconditions

MAX_OPEN_SESSIONS = 64
MAX_FINISHED_SESSIONS = 256
# Cloud Storage's limit on the custom metadata of one object.
MAX_CUSTOM_METADATA_BYTES = 8 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class UploadTarget:
    """The object an upload writes and what it must satisfy.

    Attributes:
        bucket: the bucket's name.
        name: the object's name.
        content_type: the object's media type.
        metadata: its custom metadata.
        preconditions: checked when the upload starts and again when it commits.
        crc32c: the CRC32C (base64) the caller says the body has, if it said.
        md5_hash: the MD5 (base64) the caller says the body has, if it said.
    """

    bucket: str
    name: str
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)
    preconditions: Preconditions = field(default_factory=Preconditions)
    crc32c: str | None = None
    md5_hash: str | None = None

    @classmethod
    def from_resource(
        cls,
        bucket: str,
        resource: JsonObject,
        *,
        name: str | None,
        content_type: str | None,
        preconditions: Preconditions,
    ) -> UploadTarget:
        """The target an object resource describes (``name``, ``contentType``, ``metadata``,
        ``crc32c``, ``md5Hash``); ``name`` and ``content_type`` are fallbacks from elsewhere
        in the request (query, part or session headers). Other fields are ignored.
        """
        return cls(
            bucket=bucket,
            name=storage_params.object_name(name or _optional_str(resource, "name")),
            content_type=_optional_str(resource, "contentType")
            or content_type
            or DEFAULT_CONTENT_TYPE,
            metadata=custom_metadata(resource.get("metadata")),
            preconditions=preconditions,
            crc32c=_optional_str(resource, "crc32c"),
            md5_hash=_optional_str(resource, "md5Hash"),
        )

    def commit(self, store: ObjectStore, body: BodyWriter, now: float) -> StoredObject:
        """Check the body's checksums and the preconditions, then write the object.

        The body is discarded if a check fails.
        """
        try:
            self._check_checksums(body)
            self.preconditions.check(store.get(self.bucket, self.name))
        except BaseException:
            body.discard()
            raise
        return store.commit(
            body,
            self.bucket,
            self.name,
            now=now,
            content_type=self.content_type,
            metadata=self.metadata,
        )

    def with_hashes(self, hashes: dict[str, str]) -> UploadTarget:
        """This target also expecting the ``x-goog-hash`` values a final chunk carries."""
        return UploadTarget(
            self.bucket,
            self.name,
            self.content_type,
            self.metadata,
            self.preconditions,
            hashes.get("crc32c", self.crc32c),
            hashes.get("md5", self.md5_hash),
        )

    def _check_checksums(self, body: BodyWriter) -> None:
        if self.crc32c is not None and self.crc32c != body.crc32c():
            raise storage_errors.checksum_mismatch("CRC32C", self.crc32c, body.crc32c())
        if self.md5_hash is not None and self.md5_hash != body.md5_hash():
            raise storage_errors.checksum_mismatch("MD5", self.md5_hash, body.md5_hash())


def custom_metadata(raw: Any) -> dict[str, str]:
    """An object's ``metadata``: string keys and values, at most 8 KiB in all; 400 otherwise."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in raw.items()
    ):
        raise storage_errors.invalid("Invalid metadata: expected an object of strings.")
    size = sum(len(key.encode()) + len(value.encode()) for key, value in raw.items())
    if size > MAX_CUSTOM_METADATA_BYTES:
        raise storage_errors.invalid(
            f"Custom metadata exceeds {MAX_CUSTOM_METADATA_BYTES} bytes ({size})."
        )
    return dict(raw)


def copied_metadata(source: StoredObject, resource: JsonObject) -> tuple[str, dict[str, str]]:
    """A copy's content type and custom metadata: each the request body's when it gives one
    (``contentType``, ``metadata``, which replaces the source's whole), else the source's.
    """
    content_type = _optional_str(resource, "contentType") or source.content_type
    raw = resource.get("metadata")
    return content_type, source.metadata if raw is None else custom_metadata(raw)


def parse_goog_hash(header: str | None) -> dict[str, str]:
    """``crc32c=AAAA==,md5=BBBB==`` as ``{"crc32c": ..., "md5": ...}``."""
    hashes: dict[str, str] = {}
    for item in (header or "").split(","):
        kind, sep, value = item.strip().partition("=")
        if sep and kind in {"crc32c", "md5"}:
            hashes[kind] = value
    return hashes


@dataclass(eq=False)
class UploadSession:
    """One resumable upload.

    Attributes:
        upload_id: the session's id, in its URI.
        target: the object it writes.
        body: the bytes received so far (``None`` once finished).
        total: the whole upload's size, once the caller has said it.
        result: the object written, once finished.
        lock: held while a request of this session is handled, so chunks never interleave.
    """

    upload_id: str
    target: UploadTarget
    body: BodyWriter | None
    total: int | None = None
    result: StoredObject | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def received(self) -> int:
        """How many bytes the session holds."""
        if self.result is not None:
            return self.result.size
        return self.body.size if self.body is not None else 0

    def to_json(self) -> JsonObject:
        """The session for ``GET /_emulator/storage/uploads``."""
        return {
            "upload_id": self.upload_id,
            "bucket": self.target.bucket,
            "name": self.target.name,
            "received": self.received,
            "total": self.total,
            "done": self.result is not None,
        }


class UploadBook:
    """The resumable upload sessions of one emulator: open ones, and recently finished ones."""

    def __init__(self, max_open: int = MAX_OPEN_SESSIONS) -> None:
        self._max_open = max_open
        self._open: dict[str, UploadSession] = {}
        self._finished: OrderedDict[str, UploadSession] = OrderedDict()

    def start(self, target: UploadTarget, body: BodyWriter, total: int | None) -> UploadSession:
        """Open a session writing ``target``; 429 if too many are open (``body`` dropped)."""
        if len(self._open) >= self._max_open:
            body.discard()
            raise storage_errors.too_many_sessions(self._max_open)
        session = UploadSession(secrets.token_urlsafe(24), target, body, total)
        self._open[session.upload_id] = session
        return session

    def get(self, upload_id: str) -> UploadSession:
        """The session with this id, open or recently finished; 404 otherwise."""
        session = self._open.get(upload_id) or self._finished.get(upload_id)
        if session is None:
            raise storage_errors.upload_not_found()
        return session

    def finish(self, session: UploadSession, stored: StoredObject) -> None:
        """Record that ``session`` wrote ``stored``."""
        session.result, session.body = stored, None
        self._open.pop(session.upload_id, None)
        self._finished[session.upload_id] = session
        while len(self._finished) > MAX_FINISHED_SESSIONS:
            self._finished.popitem(last=False)

    def drop(self, session: UploadSession) -> None:
        """Forget an open session and its bytes (failed checks, or cancelled)."""
        self._open.pop(session.upload_id, None)
        if session.body is not None:
            session.body.discard()
            session.body = None

    def listing(self) -> list[JsonObject]:
        """Every open and remembered session."""
        return [s.to_json() for s in (*self._open.values(), *self._finished.values())]


def _optional_str(resource: JsonObject, key: str) -> str | None:
    value = resource.get(key)
    if value is not None and not isinstance(value, str):
        raise storage_errors.invalid(f"Invalid value for {key}: expected a string.")
    return value
