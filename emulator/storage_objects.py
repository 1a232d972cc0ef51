"""The emulated Cloud Storage's objects: their metadata in memory, their bytes in files.

Bodies go to files under one directory per emulator (made by `create_app`, removed when
the application is cleaned up), so a 1 GB training file costs the emulator disk, not
memory. Each write makes a new generation, as Cloud Storage's do; the emulated tuning
service reads training files from here (`open`), by the same `gs://bucket/name` a job names.
"""

from __future__ import annotations

import base64
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


@dataclass
class ObjectStore:
    """Every object of one emulator, keyed by (bucket, name); the newest generation only."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="emulator-gcs-")))
    _objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    _generation: int = 1_700_000_000_000_000

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
        chunks = [data] if isinstance(data, bytes) else data
        crc = google_crc32c.Checksum()
        md5 = hashlib.md5()  # noqa: S324 (the JSON API's md5Hash, not a security use)
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root)
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                crc.update(chunk)
                md5.update(chunk)
                size += len(chunk)
                out.write(chunk)
        self._generation += 1
        stored = StoredObject(
            bucket=bucket,
            name=name,
            generation=self._generation,
            metageneration=1,
            size=size,
            crc32c=base64.b64encode(crc.digest()).decode(),
            md5_hash=base64.b64encode(md5.digest()).decode(),
            content_type=content_type,
            metadata=dict(metadata or {}),
            create_time=now,
            path=Path(tmp),
        )
        previous = self._objects.get((bucket, name))
        self._objects[(bucket, name)] = stored
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

    def close(self) -> None:
        """Remove every body file and the directory."""
        for stored in self._objects.values():
            stored.path.unlink(missing_ok=True)
        self._objects.clear()
        for leftover in self.root.iterdir():
            leftover.unlink(missing_ok=True)
        self.root.rmdir()
