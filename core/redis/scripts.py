"""Every Lua script the platform runs, each beside the one function that builds its call.

Each script makes one check-and-write atomic inside Redis; the rules they serve live in
Python (core.redis.job_store, core.redis.admission, worker.steps). A script names its KEYS
and ARGV at its top; its builder (`create_call`, `save_call`, ...) takes the same names as
typed keyword arguments and returns a `ScriptCall`, which `Scripts.run` sends. Time inside
a script comes from Redis `TIME`, not from a pod's clock. Every script's keys share one hash
tag (see core.redis.keys), so each runs on Redis Cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from opentelemetry.trace import SpanKind
from redis.exceptions import NoScriptError

from core.redis.client import PipelinedRedis, Redis, translated_errors
from core.runtime import tracing

ScriptArg = str | bytes | int | float


@dataclass(frozen=True, eq=False)
class Script:
    """A Lua script's source; compared and hashed by identity (one object per script)."""

    source: str

    @cached_property
    def sha(self) -> str:
        """The SHA1 that EVALSHA names the script by."""
        return hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class ScriptCall:
    """One run of a script: its KEYS and ARGV in the order its Lua names them."""

    script: Script
    keys: list[str]
    args: list[ScriptArg]


class Scripts:
    """Runs script calls on one client: EVALSHA, and on NOSCRIPT the script is loaded
    and run again (the first run on a server is three round trips, the others one).

    A Redis failure comes out as a project error (`translated_errors`), as from any other
    command of the store.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def run(self, call: ScriptCall) -> Any:
        """The script's raw reply (shapes are documented beside each script), one span
        inside a traced RPC or visit (core.runtime.tracing), named by the script.

        Sent on the client's pipelined connection, if it has one (core.redis.pipelined:
        far less CPU per call than redis-py's own path; scripts are the store's hot
        calls, a create's write and each step of a worker's visits); else as any other."""
        if tracing.child_tracer() is None:
            return await self._run(call)
        name = script_name(call.script)
        attributes = {
            "db.system.name": "redis",
            "db.operation.name": "EVALSHA",
            "db.redis.script": name,
        }
        span = tracing.start_span(f"EVALSHA {name}", kind=SpanKind.CLIENT, attributes=attributes)
        with tracing.current(span):
            return await self._run(call)

    async def _run(self, call: ScriptCall) -> Any:
        execute: Any = self._redis.execute_command
        if isinstance(self._redis, PipelinedRedis):
            connection = self._redis.pipelined
            execute = execute if connection is None else connection.execute
        command = ("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
        with translated_errors():
            try:
                return await execute(*command)
            except NoScriptError:
                await self._redis.script_load(call.script.source)
                return await execute(*command)


_NAMES: dict[Script, str] = {}


def named_scripts(namespace: Mapping[str, object]) -> None:
    """Name each Script of a module's `namespace` (its `globals()`) by its constant, as
    its spans are named: `CREATE` is `create`."""
    for constant, value in namespace.items():
        if isinstance(value, Script):
            _NAMES[value] = constant.lower()


def script_name(script: Script) -> str:
    """The script's name (`named_scripts`), or its SHA's head if it has none."""
    return _NAMES.get(script) or script.sha[:12]


def _flag(value: bool) -> int:
    """A boolean as scripts read it: '1' or '0'."""
    return 1 if value else 0


NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# The token bucket's step, for the scripts that spend one (TOKEN_BUCKET, CREATE); needs
# NOW_MS first. take_token(key, rate per second, burst, max_wait_ms, cost) returns the ms
# to wait for the token taken (0: at once), or minus the wait if that is over max_wait_ms
# (nothing taken); cost 0 only asks. Tokens below zero are reservations, waited for in
# turn: a caller that may wait less than another (a poll, next to a create) can never
# be queued far ahead of it (core.redis.token_bucket).
BUCKET_STEP = """
local function take_token(key, rate, burst, max_wait, cost)
  local f = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(f[1]) or burst
  local ts = tonumber(f[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  local wait = 0
  if tokens < 1 then wait = math.ceil((1 - tokens) * 1000 / rate) end
  if wait > max_wait then return -wait end
  if cost == 0 then return wait end
  redis.call('HSET', key, 'tokens', tostring(tokens - 1), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil((burst + 1) * 1000 / rate) + 1000)
  return wait
end
"""

# The tenant's job counts by state, for the scripts that change a job's state (CREATE,
# SAVE, REMOVE). The job hash's `counted` field names the state the job is counted
# under ('' when it is not counted: finished or deleted, as Python decides); each script
# moves the job's one count from the old `counted` to the new. A job stored before the
# counts existed has no `counted` field, read as '': nothing is taken off for it, and it
# is counted from its next save. A state whose count falls to 0 is dropped from the hash.
COUNT_STEP = """
local function move_count(counts_key, from, to)
  if from == to then return end
  if from ~= '' and redis.call('HINCRBY', counts_key, from, -1) <= 0 then
    redis.call('HDEL', counts_key, from)
  end
  if to ~= '' then redis.call('HINCRBY', counts_key, to, 1) end
end
"""

# A tenant-month's usage (core.domain.usage), for the scripts that count it (CREATE, SAVE,
# and core.redis.inference_quota's GENERATE_SETTLE):
# count_usage(key, ttl_ms, field, n, field, n, ...) adds each non-zero n to its field, and
# keeps the hash `ttl_ms` from now (renewed at most daily, sparing a write per call).
USAGE_STEP = """
local function count_usage(key, ttl_ms, ...)
  local counts = {...}
  for i = 1, #counts, 2 do
    if counts[i + 1] ~= 0 then redis.call('HINCRBY', key, counts[i], counts[i + 1]) end
  end
  if redis.call('PTTL', key) < ttl_ms - 86400000 then redis.call('PEXPIRE', key, ttl_ms) end
end
"""


# Store a new job, unless its id exists. A new job joins its tenant's queue, waiting for
# admission (core.redis.admission). The tenant's create quota is a token bucket spent
# here, by new jobs only: a client's retry of a request that already made its job costs
# nothing. The job's examples count against the tenant's stored bytes (`storage_key`)
# until the job is deleted (SAVE of a deleted job) or removed (REMOVE); a job that would pass
# `max_stored_bytes` (0: no limit) is refused before any token is spent. Returns {1,
# queue position} when created, {0, request_hash, doc, queue position} when the job
# exists, {-1, wait_ms} when the quota is spent, {-2, bytes stored} when the storage
# quota would be passed, {-3} when the id is tombstoned (a job of that id was deleted and
# removed; a model of it may still be upstream, so the id is not made again). Queue
# positions are 1-based, 0 when not queued. A new job is counted under `counted`
# (COUNT_STEP). A new job is also counted in its tenant's usage of the month
# (`usage_key`, core.domain.usage: a job, its `example_count` examples and its
# `estimated_tokens`), the hash kept `usage_ttl_ms` from now; a retry is not (it returns
# before). With a `budget_tokens` (0: none), a job whose estimate would take the month's
# estimated tokens past it is refused before any token is spent: {-4, tokens used}. A
# created job's reply carries the month's estimated tokens with it: {1, position, used}.
CREATE = Script(
    """
local job_key = KEYS[1]
local data_key = KEYS[2]
local index_key = KEYS[3]
local seq_key = KEYS[4]
local active_key = KEYS[5]
local queue_key = KEYS[6]
local bucket_key = KEYS[7]
local storage_key = KEYS[8]
local tombstones_key = KEYS[9]
local counts_key = KEYS[10]
local usage_key = KEYS[11]
local request_hash = ARGV[1]
local doc = ARGV[2]
local state = ARGV[3]
local examples = ARGV[4]
local job_id = ARGV[5]
local creates_per_s = tonumber(ARGV[6])
local create_burst = tonumber(ARGV[7])
local max_stored_bytes = tonumber(ARGV[8])
local counted = ARGV[9]
local example_count = tonumber(ARGV[10])
local estimated_tokens = tonumber(ARGV[11])
local budget_tokens = tonumber(ARGV[12])
local usage_ttl_ms = tonumber(ARGV[13])
"""
    + NOW_MS
    + BUCKET_STEP
    + COUNT_STEP
    + USAGE_STEP
    + """
local function position()
  local rank = redis.call('ZRANK', queue_key, job_id)
  if rank then return rank + 1 end
  return 0
end
if redis.call('EXISTS', job_key) == 1 then
  local f = redis.call('HMGET', job_key, 'request_hash', 'doc')
  return {0, f[1], f[2], position()}
end
if redis.call('ZSCORE', tombstones_key, job_id) then return {-3} end
local size = string.len(examples)
if max_stored_bytes > 0 then
  local stored = tonumber(redis.call('HGET', storage_key, 'bytes')) or 0
  if stored + size > max_stored_bytes then return {-2, stored} end
end
local used = tonumber(redis.call('HGET', usage_key, 'estimated_training_tokens')) or 0
if budget_tokens > 0 and used + estimated_tokens > budget_tokens then return {-4, used} end
if creates_per_s > 0 then
  local wait = take_token(bucket_key, creates_per_s, create_burst, 0, 1)
  if wait < 0 then return {-1, -wait} end
end
local seq = redis.call('INCR', seq_key)
redis.call('HSET', job_key, 'doc', doc, 'state', state, 'version', 1, 'epoch', 0,
           'lease_until', 0, 'request_hash', request_hash, 'seq', seq, 'counted', counted)
move_count(counts_key, '', counted)
redis.call('SET', data_key, examples)
redis.call('HINCRBY', storage_key, 'bytes', size)
redis.call('ZADD', index_key, seq, job_id)
redis.call('SADD', active_key, job_id)
redis.call('ZADD', queue_key, seq, job_id)
count_usage(usage_key, usage_ttl_ms, 'jobs_created', 1, 'training_examples', example_count,
            'estimated_training_tokens', estimated_tokens)
return {1, position(), used + estimated_tokens}
""",
)


def create_call(
    *,
    job_key: str,
    data_key: str,
    index_key: str,
    seq_key: str,
    active_key: str,
    queue_key: str,
    bucket_key: str,
    storage_key: str,
    tombstones_key: str,
    counts_key: str,
    usage_key: str,
    request_hash: str,
    doc: str,
    state: str,
    examples: bytes,
    job_id: str,
    creates_per_s: float,
    create_burst: int,
    max_stored_bytes: int,
    counted: str,
    example_count: int,
    estimated_tokens: int,
    budget_tokens: int,
    usage_ttl_ms: int,
) -> ScriptCall:
    """CREATE; `creates_per_s` 0 means no create quota, `max_stored_bytes` 0 no storage
    quota, `budget_tokens` 0 no training token budget; `counted` is the state the new job
    is counted under ('' for none)."""
    keys = [job_key, data_key, index_key, seq_key, active_key, queue_key, bucket_key]
    args: list[ScriptArg] = [request_hash, doc, state, examples, job_id]
    quotas: list[ScriptArg] = [creates_per_s, create_burst, max_stored_bytes]
    more = [storage_key, tombstones_key, counts_key, usage_key]
    usage: list[ScriptArg] = [example_count, estimated_tokens, budget_tokens, usage_ttl_ms]
    return ScriptCall(CREATE, [*keys, *more], [*args, *quotas, counted, *usage])


# Compare-and-set of a job's document, fenced by the lease epoch when a worker writes.
# A finished or deleted job (`ended`) leaves the queue and the running set; a deleted one
# (`drop_data`) has its examples dropped, freeing its tenant's stored bytes (a finished
# job keeps them: they are its recipe, for RetuneTuningJob); a job that no longer
# `needs_worker` leaves the active set. A finished, not deleted job is
# in the ended set scored by `finished_ms` (0: not finished), the time of the save that
# first found it finished (later saves keep that score), which retention reads. A
# worker's last write of a visit also gives the lease back (`release`, as RELEASE of a
# visit that finished), saving a round trip. The job is counted under `counted` from
# now on (COUNT_STEP), and is in the fetched set scored by `fetched_ms` (0: not there).
# A `stalled` job is also counted under STALLED (the job hash's `stall` field says whether
# it was). The `events` the change makes (core.domain.events, JSON each) are appended to
# the job's stream, which keeps the newest `max_events`: recorded exactly when the change
# is. The save that first finds the job SUCCEEDED (its stored `state` was another) adds
# `billable_tokens` (the upstream's count, 0: none) to its tenant's usage of the month it
# ended (`usage_key`, kept `usage_ttl_ms`): once, whatever saves come after.
# Returns the new version, or -1 gone, -2 lease lost (fenced), -3 version conflict.
SAVE = Script(
    """
local job_key = KEYS[1]
local index_key = KEYS[2]
local active_key = KEYS[3]
local queue_key = KEYS[4]
local running_key = KEYS[5]
local data_key = KEYS[6]
local storage_key = KEYS[7]
local ended_key = KEYS[8]
local counts_key = KEYS[9]
local fetched_key = KEYS[10]
local events_key = KEYS[11]
local usage_key = KEYS[12]
local expected_version = ARGV[1]
local epoch = ARGV[2]
local doc = ARGV[3]
local state = ARGV[4]
local unindex = ARGV[5] == '1'
local job_id = ARGV[6]
local needs_worker = ARGV[7] == '1'
local ended = ARGV[8] == '1'
local finished_ms = tonumber(ARGV[9])
local release = ARGV[10] == '1'
local counted = ARGV[11]
local fetched_ms = tonumber(ARGV[12])
local drop_data = ARGV[13] == '1'
local stall = ARGV[14]
local max_events = ARGV[15]
local billable_tokens = tonumber(ARGV[16])
local usage_ttl_ms = tonumber(ARGV[17])
local events = {unpack(ARGV, 18)}
"""
    + COUNT_STEP
    + USAGE_STEP
    + """
if redis.call('EXISTS', job_key) == 0 then return -1 end
local f = redis.call('HMGET', job_key, 'version', 'epoch', 'counted', 'stall', 'state')
if epoch ~= '' and f[2] ~= epoch then return -2 end
if f[1] ~= expected_version then return -3 end
if state == 'SUCCEEDED' and f[5] ~= 'SUCCEEDED' then
  count_usage(usage_key, usage_ttl_ms, 'billable_training_tokens', billable_tokens)
end
local v = tonumber(f[1]) + 1
redis.call('HSET', job_key, 'doc', doc, 'state', state, 'version', v, 'counted', counted,
           'stall', stall)
move_count(counts_key, f[3] or '', counted)
move_count(counts_key, f[4] or '', stall)
for _, event in ipairs(events) do
  redis.call('XADD', events_key, 'MAXLEN', max_events, '*', 'e', event)
end
if fetched_ms > 0 then
  redis.call('ZADD', fetched_key, fetched_ms, job_id)
else
  redis.call('ZREM', fetched_key, job_id)
end
if release then redis.call('HSET', job_key, 'lease_until', 0, 'deliveries', 0) end
if unindex then redis.call('ZREM', index_key, job_id) end
if needs_worker then
  redis.call('SADD', active_key, job_id)
else
  redis.call('SREM', active_key, job_id)
end
if ended then
  redis.call('ZREM', queue_key, job_id)
  redis.call('SREM', running_key, job_id)
end
if drop_data then
  local size = redis.call('STRLEN', data_key)
  if size > 0 then
    redis.call('DEL', data_key)
    redis.call('HINCRBY', storage_key, 'bytes', -size)
  end
end
if finished_ms > 0 then
  redis.call('ZADD', ended_key, 'NX', finished_ms, job_id)
else
  redis.call('ZREM', ended_key, job_id)
end
return v
""",
)


def save_call(
    *,
    job_key: str,
    index_key: str,
    active_key: str,
    queue_key: str,
    running_key: str,
    data_key: str,
    storage_key: str,
    ended_key: str,
    counts_key: str,
    fetched_key: str,
    expected_version: int,
    epoch: int | None,
    doc: str,
    state: str,
    unindex: bool,
    job_id: str,
    needs_worker: bool,
    ended: bool,
    finished_ms: int,
    counted: str,
    fetched_ms: int,
    release: bool = False,
    drop_data: bool = False,
    events_key: str,
    stall: str = "",
    max_events: int,
    usage_key: str,
    billable_tokens: int = 0,
    usage_ttl_ms: int,
    events: Sequence[str] = (),
) -> ScriptCall:
    """SAVE; `epoch` None for a writer that is not a worker (no fencing). `stall` is the
    count a stalled job is also under (STALLED, or '' for none)."""
    keys = [job_key, index_key, active_key, queue_key, running_key]
    fence: ScriptArg = "" if epoch is None else epoch
    args: list[ScriptArg] = [expected_version, fence, doc, state, _flag(unindex), job_id]
    flags: list[ScriptArg] = [_flag(needs_worker), _flag(ended), finished_ms, _flag(release)]
    more = [data_key, storage_key, ended_key, counts_key, fetched_key, events_key, usage_key]
    tail: list[ScriptArg] = [counted, fetched_ms, _flag(drop_data), stall, max_events]
    usage: list[ScriptArg] = [billable_tokens, usage_ttl_ms]
    return ScriptCall(SAVE, [*keys, *more], [*args, *flags, *tail, *usage, *events])


# Take a job's lease if nobody holds it. Returns nil if the job is gone, {0} if the lease
# is held, else {epoch, version, doc, deliveries}. The epoch is the fencing token: every
# later write by this holder must present it. `deliveries` counts hand-overs since a
# visit last finished normally: a job that keeps killing its workers is seen here,
# however they die.
ACQUIRE = Script(
    """
local job_key = KEYS[1]
local lease_ms = tonumber(ARGV[1])
"""
    + NOW_MS
    + """
if redis.call('EXISTS', job_key) == 0 then return false end
local f = redis.call('HMGET', job_key, 'lease_until', 'version', 'doc')
if tonumber(f[1]) > now then return {0} end
local epoch = redis.call('HINCRBY', job_key, 'epoch', 1)
local deliveries = redis.call('HINCRBY', job_key, 'deliveries', 1)
redis.call('HSET', job_key, 'lease_until', now + lease_ms)
return {epoch, tonumber(f[2]), f[3], deliveries}
""",
)


def acquire_call(*, job_key: str, lease_ms: int) -> ScriptCall:
    """ACQUIRE."""
    return ScriptCall(ACQUIRE, [job_key], [lease_ms])


# Prove a held lease and extend it, reading the job in the same step: the renewal of a
# lease, and the re-read a worker makes just before an upstream side effect. Returns nil
# if the job is gone, {0} if another worker has taken the lease over (the epoch moved
# on) or the holder gave it back (RELEASE, or SAVE with `release`), else {1, version, doc}.
HOLD = Script(
    """
local job_key = KEYS[1]
local epoch = ARGV[1]
local lease_ms = tonumber(ARGV[2])
"""
    + NOW_MS
    + """
local f = redis.call('HMGET', job_key, 'epoch', 'version', 'doc', 'lease_until')
if not f[3] then return false end
if f[1] ~= epoch or tonumber(f[4]) == 0 then return {0} end
redis.call('HSET', job_key, 'lease_until', now + lease_ms)
return {1, tonumber(f[2]), f[3]}
""",
)


def hold_call(*, job_key: str, epoch: int, lease_ms: int) -> ScriptCall:
    """HOLD."""
    return ScriptCall(HOLD, [job_key], [epoch, lease_ms])


# Give a lease back so the next claim need not wait for it to expire. A visit that
# `finished` normally starts the delivery count again. Returns 1, or 0 if it was no
# longer ours.
RELEASE = Script(
    """
local job_key = KEYS[1]
local epoch = ARGV[1]
local finished = ARGV[2] == '1'
if redis.call('HGET', job_key, 'epoch') ~= epoch then return 0 end
redis.call('HSET', job_key, 'lease_until', 0)
if finished then redis.call('HSET', job_key, 'deliveries', 0) end
return 1
""",
)


def release_call(*, job_key: str, epoch: int, finished: bool) -> ScriptCall:
    """RELEASE."""
    return ScriptCall(RELEASE, [job_key], [epoch, _flag(finished)])


# Remove a job and its data for good, if the caller still holds its lease; its examples'
# bytes are given back to its tenant's storage. With `tombstone_ms` (0: none) the id joins
# the tenant's tombstones, scored by it, which keep the newest `max_tombstones` (see
# core.redis.tombstones). The job's count (COUNT_STEP) and its place in the fetched set
# go with it, and so do its events. Returns 1, or 0 if the lease was lost.
REMOVE = Script(
    """
local job_key = KEYS[1]
local data_key = KEYS[2]
local index_key = KEYS[3]
local active_key = KEYS[4]
local queue_key = KEYS[5]
local running_key = KEYS[6]
local storage_key = KEYS[7]
local ended_key = KEYS[8]
local tombstones_key = KEYS[9]
local counts_key = KEYS[10]
local fetched_key = KEYS[11]
local events_key = KEYS[12]
local epoch = ARGV[1]
local job_id = ARGV[2]
local tombstone_ms = tonumber(ARGV[3])
local max_tombstones = tonumber(ARGV[4])
"""
    + COUNT_STEP
    + """
local f = redis.call('HMGET', job_key, 'epoch', 'counted', 'stall')
if f[1] ~= epoch then return 0 end
move_count(counts_key, f[2] or '', '')
move_count(counts_key, f[3] or '', '')
redis.call('DEL', events_key)
redis.call('ZREM', fetched_key, job_id)
if tombstone_ms > 0 then
  redis.call('ZADD', tombstones_key, tombstone_ms, job_id)
  redis.call('ZREMRANGEBYRANK', tombstones_key, 0, -(max_tombstones + 1))
end
local size = redis.call('STRLEN', data_key)
if size > 0 then redis.call('HINCRBY', storage_key, 'bytes', -size) end
redis.call('ZREM', ended_key, job_id)
redis.call('DEL', job_key, data_key)
redis.call('ZREM', index_key, job_id)
redis.call('SREM', active_key, job_id)
redis.call('ZREM', queue_key, job_id)
redis.call('SREM', running_key, job_id)
return 1
""",
)


def remove_call(
    *,
    job_key: str,
    data_key: str,
    index_key: str,
    active_key: str,
    queue_key: str,
    running_key: str,
    storage_key: str,
    ended_key: str,
    tombstones_key: str,
    counts_key: str,
    fetched_key: str,
    events_key: str,
    epoch: int,
    job_id: str,
    tombstone_ms: int,
    max_tombstones: int,
) -> ScriptCall:
    """REMOVE; `tombstone_ms` 0 leaves no tombstone."""
    keys = [job_key, data_key, index_key, active_key, queue_key, running_key]
    more = [storage_key, ended_key, tombstones_key, counts_key, fetched_key, events_key]
    return ScriptCall(REMOVE, [*keys, *more], [epoch, job_id, tombstone_ms, max_tombstones])


# Store a new dataset, if its tenant's storage quotas allow one more dataset and its
# examples' bytes (a quota of 0: no limit). The dataset joins the tenant's listing
# (scored by the tenant's sequence) and its use set (scored by `used_ms`, for retention).
# Returns its sequence, or -1 over `max_datasets`, -2 over `max_stored_bytes`.
DATASET_SAVE = Script(
    """
local dataset_key = KEYS[1]
local datasets_key = KEYS[2]
local use_key = KEYS[3]
local seq_key = KEYS[4]
local storage_key = KEYS[5]
local doc = ARGV[1]
local file = ARGV[2]
local size = tonumber(ARGV[3])
local dataset_id = ARGV[4]
local used_ms = tonumber(ARGV[5])
local max_datasets = tonumber(ARGV[6])
local max_stored_bytes = tonumber(ARGV[7])
local f = redis.call('HMGET', storage_key, 'datasets', 'bytes')
if max_datasets > 0 and (tonumber(f[1]) or 0) + 1 > max_datasets then return -1 end
if max_stored_bytes > 0 and (tonumber(f[2]) or 0) + size > max_stored_bytes then return -2 end
local seq = redis.call('INCR', seq_key)
redis.call('HSET', dataset_key, 'doc', doc, 'file', file, 'size', size)
redis.call('ZADD', datasets_key, seq, dataset_id)
redis.call('ZADD', use_key, used_ms, dataset_id)
redis.call('HINCRBY', storage_key, 'datasets', 1)
redis.call('HINCRBY', storage_key, 'bytes', size)
return seq
""",
)


def dataset_save_call(
    *,
    dataset_key: str,
    datasets_key: str,
    use_key: str,
    seq_key: str,
    storage_key: str,
    doc: str,
    file: str,
    size_bytes: int,
    dataset_id: str,
    used_ms: int,
    max_datasets: int,
    max_stored_bytes: int,
) -> ScriptCall:
    """DATASET_SAVE: the dataset's record, and the object holding its examples (`file`,
    of `size_bytes`, which its tenant's storage counts)."""
    keys = [dataset_key, datasets_key, use_key, seq_key, storage_key]
    args: list[ScriptArg] = [doc, file, size_bytes, dataset_id, used_ms]
    return ScriptCall(DATASET_SAVE, keys, [*args, max_datasets, max_stored_bytes])


# Delete a dataset and give its count and bytes back to the tenant's storage; with
# `unused_before_ms` (0: always), only if it was last used before then (retention: a
# create that used it meanwhile keeps it). A dataset stored before the storage quotas
# existed is not in `datasets_key`, and was never counted. The object holding its examples
# joins the tenant's discarded files, which workers delete (worker.retention). Idempotent.
# Returns 1 if it was deleted, else 0.
DATASET_DELETE = Script(
    """
local dataset_key = KEYS[1]
local datasets_key = KEYS[2]
local use_key = KEYS[3]
local storage_key = KEYS[4]
local discarded_key = KEYS[5]
local dataset_id = ARGV[1]
local unused_before_ms = tonumber(ARGV[2])
if unused_before_ms > 0 then
  local used = redis.call('ZSCORE', use_key, dataset_id)
  if not used or tonumber(used) >= unused_before_ms then return 0 end
end
if redis.call('EXISTS', dataset_key) == 0 then
  redis.call('ZREM', use_key, dataset_id)
  redis.call('ZREM', datasets_key, dataset_id)
  return 0
end
local held = redis.call('HMGET', dataset_key, 'size', 'file')
local size = tonumber(held[1]) or redis.call('HSTRLEN', dataset_key, 'examples')
if held[2] then redis.call('SADD', discarded_key, held[2]) end
redis.call('DEL', dataset_key)
redis.call('ZREM', use_key, dataset_id)
if redis.call('ZREM', datasets_key, dataset_id) == 1 then
  redis.call('HINCRBY', storage_key, 'datasets', -1)
  redis.call('HINCRBY', storage_key, 'bytes', -size)
end
return 1
""",
)


def dataset_delete_call(
    *,
    dataset_key: str,
    datasets_key: str,
    use_key: str,
    storage_key: str,
    discarded_key: str,
    dataset_id: str,
    unused_before_ms: int,
) -> ScriptCall:
    """DATASET_DELETE; `unused_before_ms` 0 deletes whatever its last use."""
    keys = [dataset_key, datasets_key, use_key, storage_key, discarded_key]
    return ScriptCall(DATASET_DELETE, keys, [dataset_id, unused_before_ms])


# Admit the tenant's oldest queued job into its running set, if the tenant runs fewer
# than `max_running` jobs. Returns {1, job_id}, {0} if nothing is queued, {-1} if at quota.
ADMIT = Script(
    """
local queue_key = KEYS[1]
local running_key = KEYS[2]
local max_running = tonumber(ARGV[1])
local head = redis.call('ZRANGE', queue_key, 0, 0)
if #head == 0 then return {0} end
if redis.call('SCARD', running_key) >= max_running then return {-1} end
redis.call('ZREM', queue_key, head[1])
redis.call('SADD', running_key, head[1])
return {1, head[1]}
""",
)


def admit_call(*, queue_key: str, running_key: str, max_running: int) -> ScriptCall:
    """ADMIT."""
    return ScriptCall(ADMIT, [queue_key, running_key], [max_running])


# Mark a tenant served: move it to the back of the admission ring (scored by Redis time),
# if it is in the ring. Returns 0 (ZADD XX adds nothing).
MARK_SERVED = Script(
    """
local ring_key = KEYS[1]
local tenant = ARGV[1]
"""
    + NOW_MS
    + """
return redis.call('ZADD', ring_key, 'XX', now, tenant)
""",
)


def mark_served_call(*, ring_key: str, tenant: str) -> ScriptCall:
    """MARK_SERVED."""
    return ScriptCall(MARK_SERVED, [ring_key], [tenant])


# The schedule has two lanes (core.redis.schedule): `work_key` holds jobs whose next
# visit is work a caller waits on, `polls_key` jobs whose next visit is a status poll.
# Moves a member to a lane, due `delay_ms` from now (or out of both, `delay_ms` < 0),
# unless `keep_woken` and the member is due in the work lane already: someone woke it
# (a cancel, a delete) after its visit began, and the visit's own plan is older than that.
# Needs NOW_MS first.
SCHEDULE_STEP = """
local function move(work_key, polls_key, member, delay_ms, to_polls, keep_woken)
  if keep_woken then
    local woken = redis.call('ZSCORE', work_key, member)
    if woken and tonumber(woken) <= now then return 0 end
  end
  if delay_ms < 0 then
    redis.call('ZREM', work_key, member)
    redis.call('ZREM', polls_key, member)
    return 0
  end
  local lane, other = work_key, polls_key
  if to_polls then lane, other = polls_key, work_key end
  redis.call('ZREM', other, member)
  return redis.call('ZADD', lane, now + delay_ms, member)
end
"""

# A worker's turn at the schedule, in one step. First the moves its finished visits
# decided (`moves` of them in `move_args` from ARGV[7] on: member, delay_ms (-1: out of
# the schedule), lane 'p' or 'w', in triples; a member woken meanwhile keeps its wake).
# Then it hands out up to `count` due members, work lane first, every one pushed
# `lease_ms` ahead in its lane, so that a member handed to a worker that dies becomes due
# again by itself. A due poll is handed out only with a token of the upstream bucket
# (`bucket_key`, `rate_per_s` 0: no budget) that comes within `poll_wait_ms`: past the
# budget, polls stay due (oldest first) instead of being sent to queue for tokens, and
# work never waits behind them. Returns how many tenants wait for admission (`ring_key`,
# core.redis.admission: a worker runs admission rounds only when some do), then for each
# member handed out the member and the ms until its prepaid token may be used (-1: a work
# member, no token taken).
CLAIM_DUE = Script(
    """
local work_key = KEYS[1]
local polls_key = KEYS[2]
local bucket_key = KEYS[3]
local ring_key = KEYS[4]
local count = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local rate_per_s = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local poll_wait_ms = tonumber(ARGV[5])
local moves = tonumber(ARGV[6])
local move_args = ARGV
"""
    + NOW_MS
    + BUCKET_STEP
    + SCHEDULE_STEP
    + """
for i = 0, moves - 1 do
  local at = 7 + 3 * i
  local to_polls = move_args[at + 2] == 'p'
  move(work_key, polls_key, move_args[at], tonumber(move_args[at + 1]), to_polls, true)
end
local handed = {redis.call('ZCARD', ring_key)}
if count <= 0 then return handed end
local due = redis.call('ZRANGEBYSCORE', work_key, '-inf', now, 'LIMIT', 0, count)
for _, member in ipairs(due) do
  redis.call('ZADD', work_key, now + lease_ms, member)
  table.insert(handed, member)
  table.insert(handed, -1)
end
local room = count - #due
if room <= 0 then return handed end
local polls = redis.call('ZRANGEBYSCORE', polls_key, '-inf', now, 'LIMIT', 0, room)
for _, member in ipairs(polls) do
  local wait = 0
  if rate_per_s > 0 then
    wait = take_token(bucket_key, rate_per_s, burst, poll_wait_ms, 1)
    if wait < 0 then break end
  end
  redis.call('ZADD', polls_key, now + lease_ms, member)
  table.insert(handed, member)
  table.insert(handed, wait)
end
return handed
""",
)


@dataclass(frozen=True)
class PollBudget:
    """The upstream bucket a claim spends on the polls it hands out (rate 0: none)."""

    bucket_key: str
    rate_per_s: float
    burst: int
    wait_ms: int


def claim_due_call(
    *,
    work_key: str,
    polls_key: str,
    ring_key: str,
    count: int,
    lease_ms: int,
    budget: PollBudget,
    moves: Sequence[tuple[str, int, bool]],
) -> ScriptCall:
    """CLAIM_DUE; each move is (member, delay_ms or -1, to the poll lane)."""
    args: list[ScriptArg] = [count, lease_ms, budget.rate_per_s, max(budget.burst, 1)]
    args += [budget.wait_ms, len(moves)]
    for member, delay_ms, to_polls in moves:
        args += [member, delay_ms, "p" if to_polls else "w"]
    return ScriptCall(CLAIM_DUE, [work_key, polls_key, budget.bucket_key, ring_key], args)


# Make a member due `delay_ms` from now in one lane (and out of the other); with
# `only_if_present` only a member already in a lane moves, within its lane (a claim
# pushed ahead while its visit runs). Returns how many were added.
DUE_IN = Script(
    """
local work_key = KEYS[1]
local polls_key = KEYS[2]
local member = ARGV[1]
local delay_ms = tonumber(ARGV[2])
local to_polls = ARGV[3] == '1'
local only_if_present = ARGV[4] == '1'
"""
    + NOW_MS
    + SCHEDULE_STEP
    + """
if only_if_present then
  redis.call('ZADD', work_key, 'XX', now + delay_ms, member)
  redis.call('ZADD', polls_key, 'XX', now + delay_ms, member)
  return 0
end
return move(work_key, polls_key, member, delay_ms, to_polls, false)
""",
)


def due_in_call(
    *,
    work_key: str,
    polls_key: str,
    member: str,
    delay_ms: int,
    poll: bool,
    only_if_present: bool,
) -> ScriptCall:
    """DUE_IN."""
    args: list[ScriptArg] = [member, delay_ms, _flag(poll), _flag(only_if_present)]
    return ScriptCall(DUE_IN, [work_key, polls_key], args)


# Add every member in neither lane to the work lane, due now. Returns how many were missing.
ENSURE_DUE = Script(
    """
local work_key = KEYS[1]
local polls_key = KEYS[2]
local members = ARGV
"""
    + NOW_MS
    + """
local added = 0
for _, member in ipairs(members) do
  if not redis.call('ZSCORE', polls_key, member) then
    added = added + redis.call('ZADD', work_key, 'NX', now, member)
  end
end
return added
""",
)


def ensure_due_call(*, work_key: str, polls_key: str, members: Sequence[str]) -> ScriptCall:
    """ENSURE_DUE."""
    return ScriptCall(ENSURE_DUE, [work_key, polls_key], list(members))


# A token bucket shared by the whole fleet, by reservation: each call takes a token now
# or books one in the future and is told how long to wait for it, so callers are served
# in order and the rate is never exceeded. A booking longer than `max_wait_ms` is
# refused: such a caller should come back later instead of queueing. Without `take`,
# only asks whether a token is there. Returns the ms to wait (0: at once), or minus the
# wait when refused (nothing taken).
TOKEN_BUCKET = Script(
    """
local bucket_key = KEYS[1]
local rate_per_s = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait_ms = tonumber(ARGV[3])
local take = ARGV[4] == '1'
"""
    + NOW_MS
    + BUCKET_STEP
    + """
local cost = 0
if take then cost = 1 end
return take_token(bucket_key, rate_per_s, burst, max_wait_ms, cost)
""",
)


def token_bucket_call(
    *,
    bucket_key: str,
    rate_per_s: float,
    burst: int,
    max_wait_ms: int,
    take: bool,
    urgent: bool = True,
) -> ScriptCall:
    """TOKEN_BUCKET."""
    args: list[ScriptArg] = [rate_per_s, burst, max_wait_ms, _flag(take), _flag(urgent)]
    return ScriptCall(TOKEN_BUCKET, [bucket_key], args)


# Push the bucket's next free token `hold_ms` into the future (a 429 from the upstream,
# whose RetryInfo says when to come back): every worker's next take waits that long,
# and reservations already made move back with it. Never shortens a hold. Returns 1.
BUCKET_HOLD = Script(
    """
local bucket_key = KEYS[1]
local rate_per_s = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local hold_ms = tonumber(ARGV[3])
"""
    + NOW_MS
    + """
local f = redis.call('HMGET', bucket_key, 'tokens', 'ts')
local tokens = tonumber(f[1]) or burst
local ts = tonumber(f[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate_per_s / 1000)
tokens = math.min(tokens, 1 - hold_ms * rate_per_s / 1000)
redis.call('HSET', bucket_key, 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', bucket_key, math.ceil(hold_ms + (burst + 1) * 1000 / rate_per_s) + 1000)
return 1
""",
)


def bucket_hold_call(*, bucket_key: str, rate_per_s: float, burst: int, hold_ms: int) -> ScriptCall:
    """BUCKET_HOLD."""
    return ScriptCall(BUCKET_HOLD, [bucket_key], [rate_per_s, burst, hold_ms])


# Extend a fleet-wide lock (core.redis.lock) if `token` still holds it. Returns 1, or 0
# if it expired or passed to another holder.
RENEW_LOCK = Script(
    """
local lock_key = KEYS[1]
local token = ARGV[1]
local lease_ms = tonumber(ARGV[2])
if redis.call('GET', lock_key) ~= token then return 0 end
return redis.call('PEXPIRE', lock_key, lease_ms)
""",
)


def renew_lock_call(*, lock_key: str, token: str, lease_ms: int) -> ScriptCall:
    """RENEW_LOCK."""
    return ScriptCall(RENEW_LOCK, [lock_key], [token, lease_ms])


# Give a fleet-wide lock back, if `token` still holds it: a holder whose lease ran out must
# not delete its successor's lock. Returns 1, or 0 if it was no longer held by `token`.
RELEASE_LOCK = Script(
    """
local lock_key = KEYS[1]
local token = ARGV[1]
if redis.call('GET', lock_key) ~= token then return 0 end
return redis.call('DEL', lock_key)
""",
)


def release_lock_call(*, lock_key: str, token: str) -> ScriptCall:
    """RELEASE_LOCK."""
    return ScriptCall(RELEASE_LOCK, [lock_key], [token])


# Replace a tenant's sealed credential if its latest version is still `expected` (what
# the writer read before sealing under `version`, which the seal binds; the latest version
# never goes down). Returns 1, or 0 if another write or a delete came first.
PUT_CREDENTIAL = Script(
    """
local record_key = KEYS[1]
local version_key = KEYS[2]
local expected = tonumber(ARGV[1])
local version = ARGV[2]
local fields = {unpack(ARGV, 3)}
local latest = tonumber(redis.call('GET', version_key) or '0')
if latest ~= expected or tonumber(version) < latest then return 0 end
redis.call('SET', version_key, version)
redis.call('DEL', record_key)
redis.call('HSET', record_key, unpack(fields))
return 1
""",
)


def put_credential_call(
    *,
    record_key: str,
    version_key: str,
    expected: int,
    version: int,
    fields: dict[str, str | bytes],
) -> ScriptCall:
    """PUT_CREDENTIAL."""
    pairs: list[ScriptArg] = [part for item in fields.items() for part in item]
    return ScriptCall(PUT_CREDENTIAL, [record_key, version_key], [expected, version, *pairs])


# Remove a tenant's sealed credential and count that as a write (a re-seal that read it
# before must not put it back). Returns 1, or 0 if there was none.
DELETE_CREDENTIAL = Script(
    """
local record_key = KEYS[1]
local version_key = KEYS[2]
local removed = redis.call('DEL', record_key)
if removed == 1 then redis.call('INCR', version_key) end
return removed
""",
)


def delete_credential_call(*, record_key: str, version_key: str) -> ScriptCall:
    """DELETE_CREDENTIAL."""
    return ScriptCall(DELETE_CREDENTIAL, [record_key, version_key], [])


# Ask for one of a Vertex AI project's `limit` slots (core.redis.project_slots). A holder
# keeps its slot; anyone else joins the project's line (once: its first ask keeps its
# place, scored by Redis time in microseconds, after the last of the line if that is not
# later, so no two tie) and is granted only if it is among the first `free` of the line,
# so a slot freed for the head of the line is not taken by a newcomer. Returns {1, 0} if
# granted, {0, position} (1-based place in the line) if not.
TAKE_SLOT = Script(
    """
local running_key = KEYS[1]
local waiting_key = KEYS[2]
local member = ARGV[1]
local limit = tonumber(ARGV[2])
if redis.call('SISMEMBER', running_key, member) == 1 then return {1, 0} end
if not redis.call('ZSCORE', waiting_key, member) then
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = redis.call('ZRANGE', waiting_key, -1, -1, 'WITHSCORES')
  if #last == 2 and tonumber(last[2]) >= now_us then now_us = tonumber(last[2]) + 1 end
  redis.call('ZADD', waiting_key, now_us, member)
end
local free = limit - redis.call('SCARD', running_key)
local rank = redis.call('ZRANK', waiting_key, member)
if rank < free then
  redis.call('ZREM', waiting_key, member)
  redis.call('SADD', running_key, member)
  return {1, 0}
end
return {0, rank + 1}
""",
)


def take_slot_call(*, running_key: str, waiting_key: str, member: str, limit: int) -> ScriptCall:
    """TAKE_SLOT."""
    return ScriptCall(TAKE_SLOT, [running_key, waiting_key], [member, limit])


# Give back a member's slot of a project, or its place in the project's line (either, both
# or neither: idempotent). Returns the first waiters that the free slots now admit, the
# ones to wake.
GIVE_BACK = Script(
    """
local running_key = KEYS[1]
local waiting_key = KEYS[2]
local member = ARGV[1]
local limit = tonumber(ARGV[2])
redis.call('SREM', running_key, member)
redis.call('ZREM', waiting_key, member)
local free = limit - redis.call('SCARD', running_key)
if free <= 0 then return {} end
return redis.call('ZRANGE', waiting_key, 0, free - 1)
""",
)


def give_back_call(*, running_key: str, waiting_key: str, member: str, limit: int) -> ScriptCall:
    """GIVE_BACK."""
    return ScriptCall(GIVE_BACK, [running_key, waiting_key], [member, limit])


named_scripts(globals())
