"""The audit trail's store: one Redis stream per tenant (or admin), newest records read first.

Each record is one stream entry (field `r`, the record's JSON) in the stream of the tenant
the call acted on, or of the admin who made it when it acted on no tenant
(core.redis.keys `audit_records`). The stream's entry ids are Redis's own (`*`: the
server's clock, unique and rising), so replicas whose clocks differ never collide; the
record's `time_ms` is the API's clock, as the caller saw it.

Two bounds, in one pipeline of commands that each name the stream's one key (so on
Redis Cluster too): the newest `max_records` entries are kept, at each write (`XADD
MAXLEN`), and entries older than `retention_s` are trimmed (`XTRIM MINID`, Redis 6.2),
at a stream's first write in each `TRIM_EVERY_S` of this replica's clock. Both exact,
not `~`: approximate trimming drops only whole nodes (100 entries by default), and at the
rate of state-changing calls a trim drops a few entries, which costs no more exactly.
A read stops at the same cut-off, so what the clocks' skew or the trim's period leaves
is never listed. The stream's expiry is set to `retention_s` with each trim, so a tenant
that goes quiet leaves nothing behind once its records have aged out (up to
`TRIM_EVERY_S` sooner than the last one's full retention). Retention 0 keeps records by
the cap alone.

On a client with a pipelined connection (core.redis.pipelined) a batch of records is
sent on it: redis-py's own pipeline costs more CPU than the create it records.

A read is a page of one stream from a position down (`XREVRANGE`), exclusive or
inclusive of that position; merging tenants' streams is the service's (service.audit).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from core.redis.client import PipelinedRedis, Redis, text, translated_errors
from core.redis.keys import Keys
from core.runtime.clock import Clock

RECORD_FIELD = "r"
TRIM_EVERY_S = 10.0
"""How often a replica trims a stream it writes to by age and sets its expiry (see the
module): a few commands per stream per period, not per batch."""
TRIMMED_STREAMS_KEPT = 10_000
"""Streams whose last trim a replica remembers; past this it forgets them all (and so
trims each at its next write)."""
ENTRY_ID = re.compile(r"(\d{1,20})-(\d{1,20})")
"""A stream entry id: milliseconds and a sequence."""


@dataclass(frozen=True)
class AuditEntry:
    """One audit record, as stored (see tuning.v1.AuditRecord for each field's meaning)."""

    time_ms: int
    principal: str
    role: str
    tenant: str
    method: str
    action: str
    resource: str
    outcome: str
    request_id: str
    detail: str

    def to_json(self) -> bytes:
        return orjson.dumps(self.fields())

    def fields(self) -> dict[str, Any]:
        """The record's fields by name (a copy)."""
        return dict(vars(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> AuditEntry:
        fields: dict[str, Any] = orjson.loads(raw)
        return cls(**fields)


@dataclass(frozen=True, order=True)
class EntryId:
    """A stream entry id, ordered as Redis orders them."""

    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    @classmethod
    def parse(cls, raw: str) -> EntryId | None:
        """The id `raw` names, or None if it names none."""
        found = ENTRY_ID.fullmatch(raw)
        return None if found is None else cls(int(found[1]), int(found[2]))


class AuditStore:
    """Appends records to their streams, within the retention and the cap, and reads them."""

    def __init__(
        self, redis: Redis, keys: Keys, clock: Clock, *, retention_s: float, max_records: int
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock
        self._retention_ms = int(retention_s * 1000)
        self._max_records = max_records
        self._trimmed_s: dict[str, float] = {}

    def cutoff(self) -> EntryId:
        """The oldest entry id still within the retention (0-0 with no retention)."""
        if self._retention_ms <= 0:
            return EntryId(0, 0)
        return EntryId(max(0, int(self._clock() * 1000) - self._retention_ms), 0)

    async def append(self, stream: str, entry: AuditEntry) -> None:
        """Add `entry` to `stream` (a tenant's or an admin's id) and trim the stream (an
        Unavailable if Redis fails)."""
        await self.append_many([(stream, entry)])

    async def append_many(self, records: Sequence[tuple[str, AuditEntry]]) -> None:
        """Add each (stream, entry), and trim each stream due a trim (see the module), in
        one round trip (an Unavailable if Redis fails). A pipeline, not a transaction:
        every command names one key, so on Redis Cluster each goes to its own key's node."""
        commands: list[tuple[str | bytes | int, ...]] = [
            (*self._xadd_prefix(stream), RECORD_FIELD, entry.to_json()) for stream, entry in records
        ]
        commands += self._trims({stream for stream, _ in records})
        connection = self._redis.pipelined if isinstance(self._redis, PipelinedRedis) else None
        with translated_errors():
            if connection is not None:
                await connection.execute_many(commands)
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                await pipe.execute()

    def _xadd_prefix(self, stream: str) -> tuple[str | int, ...]:
        key = self._keys.audit_records(stream)
        return ("XADD", key, "MAXLEN", "=", self._max_records, "*")

    def _trims(self, streams: set[str]) -> list[tuple[str | int, ...]]:
        """The trim and expiry of each of `streams` due them, noted as done."""
        if self._retention_ms <= 0:
            return []
        now_s = self._clock()
        due = [s for s in streams if now_s - self._trimmed_s.get(s, -TRIM_EVERY_S) >= TRIM_EVERY_S]
        if len(self._trimmed_s) + len(due) > TRIMMED_STREAMS_KEPT:
            self._trimmed_s.clear()
        cutoff = str(self.cutoff())
        commands: list[tuple[str | int, ...]] = []
        for stream in due:
            self._trimmed_s[stream] = now_s
            key = self._keys.audit_records(stream)
            commands += [("XTRIM", key, "MINID", "=", cutoff), ("PEXPIRE", key, self._retention_ms)]
        return commands

    async def page(
        self, stream: str, *, before: EntryId | None, inclusive: bool, count: int
    ) -> list[tuple[EntryId, AuditEntry]]:
        """Up to `count` of `stream`'s records, newest first, from `before` down (the
        newest, if None) to the retention's cut-off."""
        newest = "+" if before is None else f"{'' if inclusive else '('}{before}"
        with translated_errors():
            raw: Any = await self._redis.xrevrange(
                self._keys.audit_records(stream), newest, str(self.cutoff()), count=count
            )
        return [_entry(entry_id, fields) for entry_id, fields in raw]


def _entry(entry_id: Any, fields: dict[Any, Any]) -> tuple[EntryId, AuditEntry]:
    parsed = EntryId.parse(text(entry_id))
    if parsed is None:  # Redis makes every id; one it did not make is not ours
        raise ValueError(f"not a stream entry id: {entry_id!r}")
    raw = fields.get(RECORD_FIELD.encode(), fields.get(RECORD_FIELD, b"{}"))
    return parsed, AuditEntry.from_json(text(raw))
