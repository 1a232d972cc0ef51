"""The emulated Cloud Storage's objects: their metadata in memory, their bytes in files.

Bodies go to files under one directory per emulator (made by `create_app`, removed when
the application is cleaned up), so a 1 GB training file costs the emulator disk, not
memory. Each write makes a new generation, as Cloud Storage's do; the emulated tuning
service reads training files from here (`open`), by the same `gs://bucket/name` a job names.

A write goes through a `BodyWriter` (a temporary file that sums CRC32C and MD5 as chunks
arrive), then `commit` turns it into the object's new generation at once, so a reader never
sees a half-written body and an upload that fails leaves nothing behind (`discard`). The
upload handlers feed a writer chunk by chunk from the request stream; `put` does it all in
one call for callers that have the bytes.

A committed body file is never written again (a new generation gets a new file), so `copy`
gives the copy a hard link to the source's file: a server-side copy costs neither time nor
disk, whatever the object's size, and deleting or replacing either object leaves the other's
bytes in place.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import google_crc32c

GS_PREFIX = "gs://"


@dataclass(frozen=True)
class StoredObject:
    """One generation of one object, as the JSON API describes it.

    Attributes:
        bucket: the bucket's name.
        name: the object's name inside the bucket.
        generation: a number that grows with every write of this name.
        metageneration: 1 for a fresh generation.
        size: the body's length in bytes.
        crc32c: the body's CRC32C, big-endian, base64 (as the JSON API gives it).
        md5_hash: the body's MD5, base64.
        content_type: the body's media type.
        metadata: the caller's custom metadata.
        create_time: when this generation was written, epoch seconds.
        path: the file that holds the body.
    """

    bucket: str
    name: str
    generation: int
    metageneration: int
    size: int
    crc32c: str
    md5_hash: str
    content_type: str
    metadata: dict[str, str]
    create_time: float
    path: Path

    @property
    def uri(self) -> str:
        return f"{GS_PREFIX}{self.bucket}/{self.name}"


def parse_gs_uri(uri: str) -> tuple[str, str] | None:
    """`gs://bucket/name` as (bucket, name); None if it is not of that shape."""
    if not uri.startswith(GS_PREFIX):
        return None
    bucket, _, name = uri.removeprefix(GS_PREFIX).partition("/")
    return (bucket, name) if bucket and name else None


class BodyWriter:
    """A body being written to a temporary file, with its running size and checksums.

    It stays in ``unfinished`` (its store's set) until finished or discarded, so that the
    store can close the files of uploads still under way when the emulator stops.
    """

    def __init__(self, root: Path, unfinished: set[BodyWriter]) -> None:
        fd, tmp = tempfile.mkstemp(dir=root)
        self.path = Path(tmp)
        self.size = 0
        self._file = os.fdopen(fd, "wb")
        self._crc = google_crc32c.Checksum()
        self._md5 = hashlib.md5()  # noqa: S324 (the JSON API's md5Hash, not a security use)
        self._unfinished = unfinished
        unfinished.add(self)

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` to the body."""
        self._file.write(chunk)
        self._crc.update(chunk)
        self._md5.update(chunk)
        self.size += len(chunk)

    def crc32c(self) -> str:
        """The CRC32C of the bytes so far, big-endian, base64."""
        return base64.b64encode(self._crc.digest()).decode()

    def md5_hash(self) -> str:
        """The MD5 of the bytes so far, base64."""
        return base64.b64encode(self._md5.digest()).decode()

    def finish(self) -> None:
        """Flush and close the file (the body is complete)."""
        self._file.close()
        self._unfinished.discard(self)

    def discard(self) -> None:
        """Drop the body and its file."""
        self.finish()
        self.path.unlink(missing_ok=True)


@dataclass
class ObjectStore:
    """Every object of one emulator, keyed by (bucket, name); the newest generation only."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="emulator-gcs-")))
    _objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    _generation: int = 1_700_000_000_000_000
    _unfinished: set[BodyWriter] = field(default_factory=set)

    def get(self, bucket: str, name: str) -> StoredObject | None:
        return self._objects.get((bucket, name))

    def get_uri(self, uri: str) -> StoredObject | None:
        """The object a `gs://bucket/name` names, if it exists."""
        parsed = parse_gs_uri(uri)
        return self.get(*parsed) if parsed else None

    def open(self, stored: StoredObject) -> BinaryIO:
        """The object's body, for reading."""
        return stored.path.open("rb")

    def put(
        self,
        bucket: str,
        name: str,
        data: bytes | Iterable[bytes],
        *,
        now: float,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """Write a new generation of `bucket/name` from `data` (bytes or chunks of them).

        Preconditions (`ifGenerationMatch`) are the caller's to check first: this writes.
        """
        body = self.new_body()
        try:
            for chunk in [data] if isinstance(data, bytes) else data:
                body.write(chunk)
        except BaseException:
            body.discard()
            raise
        return self.commit(
            body, bucket, name, now=now, content_type=content_type, metadata=metadata
        )

    def new_body(self) -> BodyWriter:
        """A fresh body to write, to be committed or discarded."""
        return BodyWriter(self.root, self._unfinished)

    def commit(
        self,
        body: BodyWriter,
        bucket: str,
        name: str,
        *,
        now: float,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """Make a written body the new generation of `bucket/name`, replacing any older one."""
        body.finish()
        self._generation += 1
        stored = StoredObject(
            bucket=bucket,
            name=name,
            generation=self._generation,
            metageneration=1,
            size=body.size,
            crc32c=body.crc32c(),
            md5_hash=body.md5_hash(),
            content_type=content_type,
            metadata=dict(metadata or {}),
            create_time=now,
            path=body.path,
        )
        return self._install(stored)

    def copy(
        self,
        source: StoredObject,
        bucket: str,
        name: str,
        *,
        now: float,
        content_type: str,
        metadata: dict[str, str],
    ) -> StoredObject:
        """Make `source`'s bytes the new generation of `bucket/name` (which may be `source`).

        Preconditions are the caller's to check first, as for `put`.
        """
        self._generation += 1
        path = self.root / f"copy-{self._generation}"
        os.link(source.path, path)
        copied = dataclasses.replace(
            source,
            bucket=bucket,
            name=name,
            generation=self._generation,
            metageneration=1,
            content_type=content_type,
            metadata=dict(metadata),
            create_time=now,
            path=path,
        )
        return self._install(copied)

    def _install(self, stored: StoredObject) -> StoredObject:
        """Make `stored` its name's newest generation, removing the older one's body."""
        key = (stored.bucket, stored.name)
        previous = self._objects.get(key)
        self._objects[key] = stored
        if previous is not None:
            previous.path.unlink(missing_ok=True)
        return stored

    def delete(self, bucket: str, name: str) -> bool:
        """Remove the object; False if there was none."""
        stored = self._objects.pop((bucket, name), None)
        if stored is None:
            return False
        stored.path.unlink(missing_ok=True)
        return True

    def list(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        """The bucket's objects whose names start with `prefix`, in name order."""
        found = [o for (b, n), o in self._objects.items() if b == bucket and n.startswith(prefix)]
        return sorted(found, key=lambda o: o.name)

    def everything(self) -> tuple[StoredObject, ...]:
        """Every object of every bucket, in (bucket, name) order."""
        return tuple(self._objects[key] for key in sorted(self._objects))

    def close(self) -> None:
        """Remove every body file (unfinished ones too) and the directory."""
        for body in list(self._unfinished):
            body.discard()
        for stored in self._objects.values():
            stored.path.unlink(missing_ok=True)
        self._objects.clear()
        for leftover in self.root.iterdir():
            leftover.unlink(missing_ok=True)
        self.root.rmdir()
