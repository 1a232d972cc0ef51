"""ListAuditRecords: the audit trail newest first, one tenant's or everyone's, filtered, paged.

With a tenant, its stream is read; without one, the stream of every principal of the
tenants file as it is now (tenants and admins: an admin's calls on no tenant, such as a
reseal, are in its own), merged newest first. The order is the stream entry id, then
the stream's name; a page token is the position of the last record the page looked at
(its entry id and stream), so the next page goes on strictly after it, whatever arrived
since. A token is a position in time, not a secret, and the service is admin-only: it
is not signed (service.listing's tokens are, to keep tenants apart), only checked for
shape before it is read; it is good with any filter.

The filters (action, resource: exact matches) are applied as records are read; a page
reads at most MAX_SCAN records, and a filter that matches rarely gets a short page with a
token to go on (AIP-158). Each stream is read in batches of at most MAX_BATCH.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections import deque
from dataclasses import dataclass

from core.errors import FieldViolation, InvalidArgument
from core.redis.audit import AuditEntry, AuditStore, EntryId
from core.security.tenants import TENANT_ID, TenantDirectory

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_SCAN = 5000
"""Most records one ListAuditRecords page reads, matching or not."""
MAX_BATCH = 200
MAX_FILTER_CHARS = 256
"""Longest `action` or `resource` filter."""
MAX_AUDIT_TOKEN_CHARS = 128
_POSITION = re.compile(r"(\d{1,20}-\d{1,20})/([a-z][a-z0-9-]{0,62})")


@dataclass(frozen=True)
class AuditQuery:
    """One page's request, checked."""

    tenant: str
    action: str
    resource: str
    page_size: int
    after: Position | None

    def matches(self, entry: AuditEntry) -> bool:
        return (not self.action or entry.action == self.action) and (
            not self.resource or entry.resource == self.resource
        )


@dataclass(frozen=True)
class Position:
    """Where a page stopped: a record's entry id and stream."""

    entry_id: EntryId
    stream: str

    def token(self) -> str:
        raw = f"{self.entry_id}/{self.stream}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str) -> Position:
        """The position `token` names; INVALID_ARGUMENT naming `page_token` otherwise."""
        if len(token) > MAX_AUDIT_TOKEN_CHARS:
            raise _bad("page_token", f"at most {MAX_AUDIT_TOKEN_CHARS} characters")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _bad("page_token", "not a token this service issued") from None
        found = _POSITION.fullmatch(raw)
        entry_id = EntryId.parse(found[1]) if found else None
        if found is None or entry_id is None:
            raise _bad("page_token", "not a token this service issued")
        return cls(entry_id, found[2])


def audit_query(
    *, tenant: str, action: str, resource: str, page_size: int, page_token: str
) -> AuditQuery:
    """The request's fields, each within its bound (INVALID_ARGUMENT naming it)."""
    if tenant and not TENANT_ID.fullmatch(tenant):
        raise _bad("tenant", f"a principal's id ({TENANT_ID.pattern}) or empty")
    for name, value in (("action", action), ("resource", resource)):
        if len(value) > MAX_FILTER_CHARS:
            raise _bad(name, f"at most {MAX_FILTER_CHARS} characters")
    if page_size < 0:
        raise _bad("page_size", "must be >= 0")
    return AuditQuery(
        tenant=tenant,
        action=action,
        resource=resource,
        page_size=min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        after=Position.from_token(page_token) if page_token else None,
    )


def _bad(field: str, rule: str) -> InvalidArgument:
    return InvalidArgument(
        f"ListAuditRecords: {field} must be {rule}", [FieldViolation(field, rule)]
    )


class _Cursor:
    """One stream read newest first, a batch at a time."""

    def __init__(self, store: AuditStore, stream: str, after: Position | None, batch: int) -> None:
        self.stream = stream
        self._store = store
        self._batch = batch
        self._before = after.entry_id if after is not None else None
        # Streams ordered after the position's at the same entry id still have it to go.
        self._inclusive = after is not None and stream > after.stream
        self._done = False
        self.buffer: deque[tuple[EntryId, AuditEntry]] = deque()

    async def fill(self) -> None:
        """Read the next batch if the buffer is empty and the stream is not done."""
        if self.buffer or self._done:
            return
        rows = await self._store.page(
            self.stream, before=self._before, inclusive=self._inclusive, count=self._batch
        )
        self._done = len(rows) < self._batch
        if rows:
            self._before, self._inclusive = rows[-1][0], False
        self.buffer.extend(rows)

    def order(self) -> tuple[int, int, str]:
        """Newest first, then by stream name (only for a cursor with records buffered)."""
        entry_id = self.buffer[0][0]
        return (-entry_id.ms, -entry_id.seq, self.stream)


class AuditReader:
    """Pages of the audit trail (see the module)."""

    def __init__(self, store: AuditStore, tenants: TenantDirectory) -> None:
        self._store = store
        self._tenants = tenants

    async def page(self, query: AuditQuery) -> tuple[list[AuditEntry], str]:
        """The page's records, newest first, and the token of the next page ("" if none)."""
        streams = [query.tenant] if query.tenant else sorted(t.id for t in self._tenants)
        batch = min(query.page_size + 1, MAX_BATCH)
        cursors = [_Cursor(self._store, s, query.after, batch) for s in streams]
        await asyncio.gather(*(c.fill() for c in cursors))
        found: list[AuditEntry] = []
        last: Position | None = None
        for _ in range(MAX_SCAN):
            live = [c for c in cursors if c.buffer]
            if not live or len(found) >= query.page_size:
                break
            cursor = min(live, key=_Cursor.order)
            entry_id, entry = cursor.buffer.popleft()
            last = Position(entry_id, cursor.stream)
            if query.matches(entry):
                found.append(entry)
            await cursor.fill()
        more = any(c.buffer for c in cursors)
        return found, last.token() if more and last is not None else ""
