"""What the Cloud Storage routes read from a request: names, preconditions, ranges, paging.

Every value is checked before any work, and a bad one is a 400 in the JSON API's envelope
(``emulator.storage_errors``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from emulator import storage_errors
from emulator.storage_objects import StoredObject

# Cloud Storage's rule for names without dots (dotted names may be longer; not emulated).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
MAX_OBJECT_NAME_BYTES = 1024
MAX_LIST_RESULTS = 1000
_INT64_MAX = 2**63 - 1
_CONTENT_RANGE = re.compile(r"bytes (?:(\d{1,19})-(\d{1,19})|\*)/(\d{1,19}|\*)")
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")
T = TypeVar("T")


def bucket_name(raw: str) -> str:
    """A well-formed bucket name: 3-63 lowercase letters, digits, ``-``, ``_``, ``.``."""
    if not _BUCKET_NAME.fullmatch(raw):
        raise storage_errors.invalid_name("bucket", raw)
    return raw


def object_name(raw: str | None) -> str:
    """A well-formed object name: 1-1024 bytes of UTF-8, no CR or LF, not ``.`` or ``..``."""
    if raw is None or raw == "":
        raise storage_errors.required("name")
    too_long = len(raw.encode("utf-8", "surrogatepass")) > MAX_OBJECT_NAME_BYTES
    if too_long or "\r" in raw or "\n" in raw or raw in {".", ".."}:
        raise storage_errors.invalid_name("object", raw)
    return raw


def int_param(query: Mapping[str, str], key: str) -> int | None:
    """A non-negative int64 query parameter, or ``None`` when absent."""
    raw = query.get(key)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) > _INT64_MAX:
        raise storage_errors.invalid(f"Invalid value for {key}: {raw[:40]!r}.")
    return int(raw)


@dataclass(frozen=True)
class Preconditions:
    """The ``ifGeneration*`` / ``ifMetageneration*`` query parameters of one request.

    ``ifGenerationMatch=0`` means "the object must not exist" (a create-only write);
    ``ifGenerationNotMatch=0`` means "some generation must exist". A copy or rewrite reads
    these for its destination and ``ifSourceGeneration*`` / ``ifSourceMetageneration*`` for
    its source (``source=True``).
    """

    generation_match: int | None = None
    generation_not_match: int | None = None
    metageneration_match: int | None = None
    metageneration_not_match: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, source: bool = False) -> Preconditions:
        """Read the four parameters (400 if one is not a non-negative integer)."""
        prefix = "ifSource" if source else "if"
        return cls(
            int_param(query, prefix + "GenerationMatch"),
            int_param(query, prefix + "GenerationNotMatch"),
            int_param(query, prefix + "MetagenerationMatch"),
            int_param(query, prefix + "MetagenerationNotMatch"),
        )

    def check(self, current: StoredObject | None) -> None:
        """412 ``conditionNotMet`` unless every given precondition holds for ``current``."""
        if not self.holds(current):
            raise storage_errors.precondition_failed()

    def holds(self, current: StoredObject | None) -> bool:
        """Whether every given precondition holds (a missing object has generation 0)."""
        generation = current.generation if current else 0
        metageneration = current.metageneration if current else None
        checks = (
            self.generation_match in (None, generation),
            self.generation_not_match is None or self.generation_not_match != generation,
            self.metageneration_match in (None, metageneration),
            self.metageneration_not_match is None
            or (metageneration is not None and self.metageneration_not_match != metageneration),
        )
        return all(checks)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` a ``Range: bytes=a-b`` header asks of ``size`` bytes.

    ``None`` means the whole object: no header or a malformed one (HTTP says to ignore it).
    ``bytes=-n`` is the last n bytes. 416 if it starts past the end.
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_raw, last_raw = match.groups()
    if first_raw == "":
        first, last = max(size - int(last_raw), 0), size - 1
    else:
        first = int(first_raw)
        last = min(int(last_raw), size - 1) if last_raw else size - 1
    if first >= size or first > last:
        raise storage_errors.range_not_satisfiable(size)
    return first, last


@dataclass(frozen=True)
class ContentRange:
    """A resumable upload chunk's ``Content-Range``.

    Attributes:
        first: the chunk's first byte offset, ``None`` for a status query (``bytes */...``).
        last: its last byte offset (inclusive), ``None`` for a status query.
        total: the whole upload's size, ``None`` while unknown (``/*``).
    """

    first: int | None
    last: int | None
    total: int | None

    @classmethod
    def parse(cls, header: str | None) -> ContentRange:
        """``bytes a-b/total``, ``bytes a-b/*``, ``bytes */total`` or ``bytes */*``; 400 else.

        A chunk without the header is a status query, as ``bytes */*`` is.
        """
        if header is None:
            return cls(None, None, None)
        match = _CONTENT_RANGE.fullmatch(header.strip())
        if match is None:
            raise storage_errors.invalid(f"Invalid Content-Range: {header[:80]!r}.")
        first, last, total = match.groups()
        parsed = cls(
            int(first) if first else None,
            int(last) if last else None,
            None if total == "*" else int(total),
        )
        parsed._check()
        return parsed

    def _check(self) -> None:
        if self.first is not None and self.last is not None and self.first > self.last:
            raise storage_errors.invalid("Invalid Content-Range: first byte after last.")
        if self.total is not None and self.last is not None and self.last >= self.total:
            raise storage_errors.invalid("Invalid Content-Range: last byte beyond the total.")

    @property
    def length(self) -> int:
        """How many bytes the chunk carries (0 for a status query)."""
        if self.first is None or self.last is None:
            return 0
        return self.last - self.first + 1


@dataclass(frozen=True)
class ListPage:
    """Which page of a bucket's listing to serve.

    Attributes:
        prefix: only names starting with it (at most 1024 bytes).
        delimiter: roll names up to their first delimiter after the prefix ("" for none).
        size: at most this many entries (``maxResults``: 1 to 1000, default 1000).
        after: the last entry of the previous page (from ``pageToken``), if any.
    """

    prefix: str = ""
    delimiter: str = ""
    size: int = MAX_LIST_RESULTS
    after: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ListPage:
        """Read and check ``prefix``, ``delimiter``, ``maxResults`` and ``pageToken``."""
        token = query.get("pageToken")
        return cls(
            _bounded_text(query, "prefix"),
            _bounded_text(query, "delimiter"),
            max_results(query),
            decode_page_token(token) if token else None,
        )

    def select(self, entries: Sequence[tuple[str, T]]) -> tuple[list[tuple[str, T]], str | None]:
        """This page of ``entries`` (sorted by key), and the next page's token if any."""
        remaining = [entry for entry in entries if self.after is None or entry[0] > self.after]
        chosen = remaining[: self.size]
        if len(chosen) == len(remaining):
            return chosen, None
        return chosen, encode_page_token(chosen[-1][0])


def max_results(query: Mapping[str, str]) -> int:
    """``maxResults``: 1 to 1000, 1000 when absent (larger values are clamped)."""
    value = int_param(query, "maxResults")
    if value is None:
        return MAX_LIST_RESULTS
    if value < 1:
        raise storage_errors.invalid("Invalid value for maxResults: must be positive.")
    return min(value, MAX_LIST_RESULTS)


def _bounded_text(query: Mapping[str, str], key: str) -> str:
    value = query.get(key, "")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_OBJECT_NAME_BYTES:
        raise storage_errors.invalid(f"Invalid value for {key}: longer than 1024 bytes.")
    return value


def encode_page_token(last_name: str) -> str:
    """An opaque token for the page after the entry named ``last_name``."""
    return base64.urlsafe_b64encode(last_name.encode("utf-8", "surrogatepass")).decode()


def decode_page_token(token: str) -> str:
    """The last name served before this token's page; 400 if it is not one of ours."""
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8", "surrogatepass")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise storage_errors.invalid("Invalid page token.") from exc
