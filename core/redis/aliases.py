"""Aliases: a tenant's stable names for its tuned models, their history, and resolution.

An alias (`aliases/{alias_id}`) points at a target, `tuningJobs/{id}` or
`tuningJobs/{id}/checkpoints/{checkpoint_id}`, and optionally at a canary target that
takes `canary_percent` of the calls. What a target must be (the caller's own SUCCEEDED
job) is checked by the API before a write (service.aliases_api); this module stores.

Per alias, two keys in the tenant's hash tag (core.redis.keys): a hash with the current
revision, and a sorted set of revision records (JSON, scored by revision number), the
newest MAX_REVISIONS_KEPT kept; the tenant's index of aliases is a third. Every change is
one Lua script, so that a move and its record are one atomic step: CREATE_ALIAS (if
absent, under the tenant's cap), MOVE_ALIAS and ROLLBACK_ALIAS (each a new revision,
refused if the caller's `expected_revision` is not the current one: compare-and-set, so
two operators cannot overwrite each other silently), DELETE_ALIAS (the alias and its
history). Revisions count from 1 again for an alias deleted and created anew. Times come
from Redis `TIME`; a script's keys share one slot, so each runs on Redis Cluster.

`AliasStore.resolve` is what GenerateContent calls: one read of the alias's hash, and,
with a canary, a split that is deterministic per request key (`takes_canary`).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import AliasQuotaExceeded, AlreadyExists, NotFound, RevisionMismatch
from core.redis.client import Redis, text, translated_errors
from core.redis.keys import Keys
from core.redis.scripts import NOW_MS, Script, ScriptCall, Scripts, named_scripts

ALIAS_NAME_PREFIX = "aliases/"
ALIAS_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
"""An alias id (AIP-122): 1 to 63 characters of [a-z0-9-], a letter first, no `-` last."""
MAX_ALIASES_PER_TENANT = 100
MAX_REVISIONS_KEPT = 100
"""The newest revisions kept per alias; older ones are dropped at each change."""
CANARY_PERCENTS = (1, 99)
SPLIT_BUCKETS = 100


@dataclass(frozen=True)
class Route:
    """Where an alias sends calls: `target`, and `canary_percent` of them to
    `canary_target` ("" and 0: no canary)."""

    target: str
    canary_target: str = ""
    canary_percent: int = 0


@dataclass(frozen=True)
class Alias:
    """An alias at its current revision; times in seconds since the epoch."""

    alias_id: str
    route: Route
    revision: int
    create_time: float
    update_time: float
    update_principal: str

    @property
    def name(self) -> str:
        return ALIAS_NAME_PREFIX + self.alias_id


@dataclass(frozen=True)
class AliasRevision:
    """One recorded change: `change` is `create`, `update` or `rollback to N`."""

    revision: int
    route: Route
    update_time: float
    update_principal: str
    change: str


@dataclass(frozen=True)
class Resolved:
    """The target one call through an alias goes to, and whether it is the canary."""

    target: str
    revision: int
    canary: bool


def takes_canary(alias_id: str, request_key: str, canary_percent: int, rng: random.Random) -> bool:
    """Whether a call goes to the canary: the same `request_key` always lands on the same
    side (for one alias and percent); a call without a key is split at random."""
    if canary_percent <= 0:
        return False
    if not request_key:
        return rng.randrange(SPLIT_BUCKETS) < canary_percent
    digest = hashlib.sha256(f"{alias_id}:{request_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SPLIT_BUCKETS < canary_percent


class AliasStore:
    """The tenant's aliases in Redis. `rng` splits the calls that carry no request key."""

    def __init__(self, redis: Redis, keys: Keys, rng: random.Random | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts(redis)
        self._rng = rng or random.Random()

    async def create(self, tenant: str, alias_id: str, route: Route, *, principal: str) -> Alias:
        """A new alias at revision 1; AlreadyExists, or AliasQuotaExceeded past the cap."""
        call = create_alias_call(
            alias_key=self._keys.tenant_alias(tenant, alias_id),
            index_key=self._keys.tenant_aliases(tenant),
            revisions_key=self._keys.tenant_alias_revisions(tenant, alias_id),
            seq_key=self._keys.tenant_seq(tenant),
            alias_id=alias_id,
            route=route,
            principal=principal,
        )
        reply = await self._scripts.run(call)
        if int(reply[0]) == 0:
            raise AlreadyExists(f"{ALIAS_NAME_PREFIX}{alias_id} exists already")
        if int(reply[0]) < 0:
            raise AliasQuotaExceeded(tenant, limit=MAX_ALIASES_PER_TENANT)
        return _alias(alias_id, reply[1:])

    async def move(
        self, tenant: str, alias_id: str, route: Route, *, principal: str, expected_revision: int
    ) -> Alias:
        """Point the alias at `route` (a new revision); `expected_revision` 0: any."""
        call = move_alias_call(
            alias_key=self._keys.tenant_alias(tenant, alias_id),
            revisions_key=self._keys.tenant_alias_revisions(tenant, alias_id),
            route=route,
            principal=principal,
            expected_revision=expected_revision,
        )
        return self._written(alias_id, expected_revision, await self._scripts.run(call))

    async def rollback(
        self,
        tenant: str,
        alias_id: str,
        *,
        to_revision: int,
        principal: str,
        expected_revision: int,
    ) -> Alias:
        """Point the alias at revision `to_revision`'s route again (a new revision, change
        `rollback to N`); NotFound if that revision is not kept."""
        call = rollback_alias_call(
            alias_key=self._keys.tenant_alias(tenant, alias_id),
            revisions_key=self._keys.tenant_alias_revisions(tenant, alias_id),
            to_revision=to_revision,
            principal=principal,
            expected_revision=expected_revision,
        )
        return self._written(alias_id, expected_revision, await self._scripts.run(call))

    def _written(self, alias_id: str, expected: int, reply: Sequence[Any]) -> Alias:
        status = int(reply[0])
        if status == MISSING:
            raise alias_not_found(alias_id)
        if status == STALE:
            raise RevisionMismatch(
                ALIAS_NAME_PREFIX + alias_id, expected=expected, current=int(reply[1])
            )
        if status == NOT_KEPT:
            raise NotFound(f"that revision of {ALIAS_NAME_PREFIX}{alias_id} is not kept")
        return _alias(alias_id, reply[1:])

    async def delete(self, tenant: str, alias_id: str) -> None:
        """Remove the alias and its history; NotFound if there is none."""
        call = delete_alias_call(
            alias_key=self._keys.tenant_alias(tenant, alias_id),
            index_key=self._keys.tenant_aliases(tenant),
            revisions_key=self._keys.tenant_alias_revisions(tenant, alias_id),
            alias_id=alias_id,
        )
        if not int(await self._scripts.run(call)):
            raise alias_not_found(alias_id)

    async def get(self, tenant: str, alias_id: str) -> Alias | None:
        """The alias, or None if the tenant has none of that id."""
        with translated_errors():
            fields: Any = await self._redis.hgetall(self._keys.tenant_alias(tenant, alias_id))
        return _alias_of(alias_id, fields) if fields else None

    async def page(
        self, tenant: str, *, before_seq: int | None, count: int
    ) -> list[tuple[int, Alias | None]]:
        """Up to `count` of the tenant's aliases, newest first, before `before_seq`; an
        alias is None where it was deleted between the two reads."""
        high: Any = "+inf" if before_seq is None else f"({before_seq}"
        with translated_errors():
            ids: Any = await self._redis.zrevrangebyscore(
                self._keys.tenant_aliases(tenant), high, "-inf", 0, count, withscores=True
            )
            async with self._redis.pipeline(transaction=False) as pipe:
                for alias_id, _ in ids:
                    pipe.hgetall(self._keys.tenant_alias(tenant, text(alias_id)))
                found = await pipe.execute()
        return [
            (int(seq), _alias_of(text(alias_id), fields) if fields else None)
            for (alias_id, seq), fields in zip(ids, found, strict=True)
        ]

    async def pointing_at(self, tenant: str, job_name: str) -> list[str]:
        """The names of the tenant's aliases whose target or canary is the job `job_name`
        (`tuningJobs/{id}`) or one of its checkpoints: all of them in one page, since a
        tenant has at most MAX_ALIASES_PER_TENANT."""
        found = await self.page(tenant, before_seq=None, count=MAX_ALIASES_PER_TENANT)

        def to_job(target: str) -> bool:
            return target == job_name or target.startswith(job_name + "/")

        return sorted(
            alias.name
            for _, alias in found
            if alias is not None
            and (to_job(alias.route.target) or to_job(alias.route.canary_target))
        )

    async def revisions(
        self, tenant: str, alias_id: str, *, before_revision: int | None, count: int
    ) -> list[AliasRevision]:
        """Up to `count` kept revisions of the alias, newest first, before `before_revision`."""
        high: Any = "+inf" if before_revision is None else f"({before_revision}"
        key = self._keys.tenant_alias_revisions(tenant, alias_id)
        with translated_errors():
            records: Any = await self._redis.zrevrangebyscore(key, high, "-inf", 0, count)
        return [_revision(json.loads(r)) for r in records]

    async def revision(self, tenant: str, alias_id: str, revision: int) -> AliasRevision | None:
        """Revision `revision` of the alias, if it is kept."""
        key = self._keys.tenant_alias_revisions(tenant, alias_id)
        with translated_errors():
            records: Any = await self._redis.zrangebyscore(key, revision, revision)
        return _revision(json.loads(records[0])) if records else None

    async def resolve(self, tenant: str, alias_id: str, request_key: str = "") -> Resolved:
        """Where one call through the alias goes, in one Redis read; NotFound if the
        tenant has no such alias. `request_key` pins the call's side of a canary split."""
        key = self._keys.tenant_alias(tenant, alias_id)
        with translated_errors():
            found: Any = await self._redis.hmget(
                key, "target", "canary_target", "canary_percent", "revision"
            )
        target, canary_target, percent, revision = found
        if target is None:
            raise alias_not_found(alias_id)
        canary = bool(canary_target) and takes_canary(
            alias_id, request_key, int(percent or 0), self._rng
        )
        chosen = canary_target if canary else target
        return Resolved(text(chosen), int(revision), canary)


def alias_not_found(alias_id: str) -> NotFound:
    """The answer for an alias the caller does not have (another tenant's too)."""
    return NotFound(f"{ALIAS_NAME_PREFIX}{alias_id} not found")


def _alias(alias_id: str, flat: Sequence[Any]) -> Alias:
    """An alias from a script's HGETALL reply (field, value, field, value, ...)."""
    return _alias_of(alias_id, dict(zip(flat[::2], flat[1::2], strict=True)))


def _alias_of(alias_id: str, raw: dict[Any, Any]) -> Alias:
    fields = {text(k): text(v) for k, v in raw.items()}
    return Alias(
        alias_id=alias_id,
        route=_route(fields),
        revision=int(fields["revision"]),
        create_time=int(fields["create_ms"]) / 1000,
        update_time=int(fields["update_ms"]) / 1000,
        update_principal=fields["update_principal"],
    )


def _revision(record: dict[str, str]) -> AliasRevision:
    return AliasRevision(
        revision=int(record["revision"]),
        route=_route(record),
        update_time=int(record["update_ms"]) / 1000,
        update_principal=record["update_principal"],
        change=record["change"],
    )


def _route(fields: dict[str, str]) -> Route:
    return Route(fields["target"], fields["canary_target"], int(fields["canary_percent"]))


# The scripts. Write replies: {1, the alias's fields (HGETALL)} when written, else a
# status below (with the current revision for STALE).
MISSING, STALE, NOT_KEPT = -1, -2, -3

# The step every write ends with, after NOW_MS: the alias's hash takes the new revision,
# the revision's record joins the history, and the history is trimmed to the newest
# `max_revisions`.
_WRITE_REVISION = """
local function write_revision(alias_key, revisions_key, revision, route, principal, why,
                               max_revisions)
  redis.call('HSET', alias_key, 'revision', revision, 'target', route[1],
    'canary_target', route[2], 'canary_percent', route[3],
    'update_ms', now, 'update_principal', principal)
  local record = cjson.encode({revision = tostring(revision), target = route[1],
    canary_target = route[2], canary_percent = route[3],
    update_ms = string.format('%d', now), update_principal = principal, change = why})
  redis.call('ZADD', revisions_key, revision, record)
  redis.call('ZREMRANGEBYRANK', revisions_key, 0, -(max_revisions + 1))
  local reply = {1}
  for _, v in ipairs(redis.call('HGETALL', alias_key)) do reply[#reply + 1] = v end
  return reply
end
"""

# Create an alias at revision 1 unless it exists ({0}) or the tenant has `max_aliases`
# ({-1}); it joins the tenant's index under a new `tenant_seq`.
CREATE_ALIAS = Script(
    """
local alias_key = KEYS[1]
local index_key = KEYS[2]
local revisions_key = KEYS[3]
local seq_key = KEYS[4]
local alias_id = ARGV[1]
local route = {ARGV[2], ARGV[3], ARGV[4]}
local principal = ARGV[5]
local max_aliases = tonumber(ARGV[6])
local max_revisions = tonumber(ARGV[7])
"""
    + NOW_MS
    + _WRITE_REVISION
    + """
if redis.call('EXISTS', alias_key) == 1 then return {0} end
if redis.call('ZCARD', index_key) >= max_aliases then return {-1} end
local seq = redis.call('INCR', seq_key)
redis.call('ZADD', index_key, seq, alias_id)
redis.call('DEL', revisions_key)
redis.call('HSET', alias_key, 'create_ms', now, 'seq', seq)
return write_revision(alias_key, revisions_key, 1, route, principal, 'create', max_revisions)
"""
)


def create_alias_call(
    *,
    alias_key: str,
    index_key: str,
    revisions_key: str,
    seq_key: str,
    alias_id: str,
    route: Route,
    principal: str,
    max_aliases: int = MAX_ALIASES_PER_TENANT,
    max_revisions: int = MAX_REVISIONS_KEPT,
) -> ScriptCall:
    return ScriptCall(
        CREATE_ALIAS,
        [alias_key, index_key, revisions_key, seq_key],
        [alias_id, *_route_args(route), principal, max_aliases, max_revisions],
    )


# The compare-and-set every change of an existing alias starts with (after its inputs):
# MISSING if there is no alias, STALE if `expected` (0: any) is not its revision.
_CURRENT_REVISION = """
local current = tonumber(redis.call('HGET', alias_key, 'revision'))
if not current then return {-1} end
if expected ~= 0 and expected ~= current then return {-2, current} end
"""

# Move an alias to a new route: revision + 1, change 'update'.
MOVE_ALIAS = Script(
    """
local alias_key = KEYS[1]
local revisions_key = KEYS[2]
local route = {ARGV[1], ARGV[2], ARGV[3]}
local principal = ARGV[4]
local expected = tonumber(ARGV[5])
local max_revisions = tonumber(ARGV[6])
"""
    + NOW_MS
    + _WRITE_REVISION
    + _CURRENT_REVISION
    + """
return write_revision(alias_key, revisions_key, current + 1, route, principal, 'update',
  max_revisions)
"""
)


def move_alias_call(
    *,
    alias_key: str,
    revisions_key: str,
    route: Route,
    principal: str,
    expected_revision: int,
    max_revisions: int = MAX_REVISIONS_KEPT,
) -> ScriptCall:
    return ScriptCall(
        MOVE_ALIAS,
        [alias_key, revisions_key],
        [*_route_args(route), principal, expected_revision, max_revisions],
    )


# Point an alias at the route of kept revision `to_revision` again: revision + 1, change
# 'rollback to N'; NOT_KEPT if that revision is not in the history.
ROLLBACK_ALIAS = Script(
    """
local alias_key = KEYS[1]
local revisions_key = KEYS[2]
local to_revision = ARGV[1]
local principal = ARGV[2]
local expected = tonumber(ARGV[3])
local max_revisions = tonumber(ARGV[4])
"""
    + NOW_MS
    + _WRITE_REVISION
    + _CURRENT_REVISION
    + """
local found = redis.call('ZRANGEBYSCORE', revisions_key, to_revision, to_revision)
if #found == 0 then return {-3} end
local old = cjson.decode(found[1])
local route = {old.target, old.canary_target, old.canary_percent}
return write_revision(alias_key, revisions_key, current + 1, route, principal,
  'rollback to ' .. to_revision, max_revisions)
"""
)


def rollback_alias_call(
    *,
    alias_key: str,
    revisions_key: str,
    to_revision: int,
    principal: str,
    expected_revision: int,
    max_revisions: int = MAX_REVISIONS_KEPT,
) -> ScriptCall:
    return ScriptCall(
        ROLLBACK_ALIAS,
        [alias_key, revisions_key],
        [to_revision, principal, expected_revision, max_revisions],
    )


# Delete an alias, its place in the index and its history. Returns 1, or 0 if absent.
DELETE_ALIAS = Script(
    """
local alias_key = KEYS[1]
local index_key = KEYS[2]
local revisions_key = KEYS[3]
local alias_id = ARGV[1]
if redis.call('DEL', alias_key) == 0 then return 0 end
redis.call('ZREM', index_key, alias_id)
redis.call('DEL', revisions_key)
return 1
"""
)


def delete_alias_call(
    *, alias_key: str, index_key: str, revisions_key: str, alias_id: str
) -> ScriptCall:
    return ScriptCall(DELETE_ALIAS, [alias_key, index_key, revisions_key], [alias_id])


def _route_args(route: Route) -> list[str | int]:
    return [route.target, route.canary_target, route.canary_percent]


named_scripts(globals())
