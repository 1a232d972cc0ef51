"""The Lua scripts behind `JobStore` and `Schedule`.

Each makes one check-and-write atomic inside Redis; the rules they serve live in
Python (core.redis.job_store, worker.steps). Time inside a script comes from Redis `TIME`, not
from a pod's clock. Every script's keys share one hash tag (see core.redis.keys).
"""

from __future__ import annotations

NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# The token bucket's step, for the scripts that spend one (TOKEN_BUCKET, CREATE); needs
# NOW_MS first. take_token(key, rate per second, burst, max_wait_ms, cost) returns the ms
# to wait for the token taken (0: at once), or minus the wait if that is over max_wait_ms
# (nothing taken); cost 0 only asks.
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

# KEYS: job, data, index, seq, active, queue, create bucket. ARGV: request_hash, doc,
# state, examples, job_id, creates per second (0: no limit), burst.
# A new job joins its tenant's queue, waiting for admission (core.redis.admission). The tenant's
# create quota is a token bucket spent here, by new jobs only: a client's retry of a
# request that already made its job costs nothing. Returns {1, queue position} when
# created, {0, request_hash, doc, queue position} when the job exists, {-1, wait_ms}
# when the quota is spent. Queue positions are 1-based, 0 when not queued.
CREATE = (
    NOW_MS
    + BUCKET_STEP
    + """
local function position()
  local rank = redis.call('ZRANK', KEYS[6], ARGV[5])
  if rank then return rank + 1 end
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local f = redis.call('HMGET', KEYS[1], 'request_hash', 'doc')
  return {0, f[1], f[2], position()}
end
local rate = tonumber(ARGV[6])
if rate > 0 then
  local wait = take_token(KEYS[7], rate, tonumber(ARGV[7]), 0, 1)
  if wait < 0 then return {-1, -wait} end
end
local seq = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'state', ARGV[3], 'version', 1, 'epoch', 0,
           'lease_until', 0, 'request_hash', ARGV[1], 'seq', seq)
redis.call('SET', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], seq, ARGV[5])
redis.call('SADD', KEYS[5], ARGV[5])
redis.call('ZADD', KEYS[6], seq, ARGV[5])
return {1, position()}
"""
)

# Compare-and-set of a job's document. KEYS: job, index, active, queue, running.
# ARGV: expected_version, epoch ('' = not a worker), doc, state, unindex, job_id, active,
# ended ('1' when the job is finished or deleted: it leaves the queue and the running set).
# Returns the new version, or -1 gone, -2 lease lost (fenced), -3 version conflict.
SAVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local f = redis.call('HMGET', KEYS[1], 'version', 'epoch')
if ARGV[2] ~= '' and f[2] ~= ARGV[2] then return -2 end
if f[1] ~= ARGV[1] then return -3 end
local v = tonumber(f[1]) + 1
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'state', ARGV[4], 'version', v)
if ARGV[5] == '1' then redis.call('ZREM', KEYS[2], ARGV[6]) end
if ARGV[7] == '1' then
  redis.call('SADD', KEYS[3], ARGV[6])
else
  redis.call('SREM', KEYS[3], ARGV[6])
end
if ARGV[8] == '1' then
  redis.call('ZREM', KEYS[4], ARGV[6])
  redis.call('SREM', KEYS[5], ARGV[6])
end
return v
"""

# Take a job's lease if nobody holds it. KEYS: job. ARGV: lease_ms.
# Returns nil if the job is gone, {0} if the lease is held, else
# {epoch, version, doc, deliveries}. The epoch is the fencing token: every later write by
# this holder must present it. `deliveries` counts hand-overs since a visit last finished
# normally: a job that keeps killing its workers is seen here, however they die.
ACQUIRE = (
    NOW_MS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local f = redis.call('HMGET', KEYS[1], 'lease_until', 'version', 'doc')
if tonumber(f[1]) > now then return {0} end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
local deliveries = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
redis.call('HSET', KEYS[1], 'lease_until', now + tonumber(ARGV[1]))
return {epoch, tonumber(f[2]), f[3], deliveries}
"""
)

# Extend a held lease. KEYS: job. ARGV: epoch, lease_ms. Returns 1, or 0 if lost.
RENEW = (
    NOW_MS
    + """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', now + tonumber(ARGV[2]))
return 1
"""
)

# Give a lease back so the next claim need not wait for it to expire.
# KEYS: job. ARGV: epoch, finished ('1': the visit ended normally, so the delivery count
# starts again). Returns 1, or 0 if it was no longer ours.
RELEASE = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', 0)
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'deliveries', 0) end
return 1
"""

# Remove a job for good, if the caller still holds its lease.
# KEYS: job, data, index, active, queue, running. ARGV: epoch, job_id.
# Returns 1, or 0 if the lease was lost.
REMOVE = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('SREM', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('SREM', KEYS[6], ARGV[2])
return 1
"""

# Admit the tenant's oldest queued job if the tenant runs fewer than ARGV[1] jobs.
# KEYS: queue, running. Returns {1, job_id}, {0} if nothing is queued, {-1} if at quota.
ADMIT = """
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if #head == 0 then return {0} end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[1]) then return {-1} end
redis.call('ZREM', KEYS[1], head[1])
redis.call('SADD', KEYS[2], head[1])
return {1, head[1]}
"""

# Hand out up to ARGV[1] due members, pushing each one's due time ARGV[2] ms ahead in
# the same step: a member handed to a worker that dies becomes due again by itself.
# KEYS: schedule.
CLAIM_DUE = (
    NOW_MS
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), member)
end
return due
"""
)

# Set when a member is next due: ARGV[2] ms from now. ARGV[3] = 'XX' updates only a
# member that is present, 'NX' adds only a missing one. KEYS: schedule.
# ARGV: member, delay_ms, flag.
DUE_IN = (
    NOW_MS
    + """
if ARGV[3] == 'XX' or ARGV[3] == 'NX' then
  return redis.call('ZADD', KEYS[1], ARGV[3], now + tonumber(ARGV[2]), ARGV[1])
end
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
"""
)


# Add every member not already scheduled, due now. KEYS: schedule. ARGV: members.
# Returns how many were missing.
ENSURE_DUE = (
    NOW_MS
    + """
local added = 0
for _, member in ipairs(ARGV) do
  added = added + redis.call('ZADD', KEYS[1], 'NX', now, member)
end
return added
"""
)

# A token bucket shared by the whole fleet, by reservation: each call takes a token now
# or books one in the future and is told how long to wait for it, so callers are served
# in order and the rate is never exceeded. A booking longer than ARGV[3] ms is refused
# (returns minus the wait): such a caller should come back later instead of queueing.
# KEYS: bucket. ARGV: rate per second, burst, max_wait_ms, cost (1 to take a token, 0 to
# only ask whether one is there).
TOKEN_BUCKET = (
    NOW_MS
    + BUCKET_STEP
    + """
return take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                  tonumber(ARGV[4]))
"""
)
