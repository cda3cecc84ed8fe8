"""The Lua scripts of the Redis limiter: each runs atomically inside Redis.

Atomicity is what makes admission exact across processes and hosts: the check of every
bucket and the recording of the call happen in one script, so no other client can slip
in between. Time comes from Redis (``TIME``), so clients with skewed clocks agree.
Times are integer microseconds; numbers handed back to Redis go through
``string.format('%d')`` because Lua's default number formatting keeps only 14 digits.

Keys of one bucket (``P`` = ``aiport:rl:{scope}:model``; the braces make ``scope`` a
Redis Cluster hash tag, so all buckets of a key live on one shard)::

    P:req    sorted set   lease id -> admission time          (requests log)
    P:tok    sorted set   "lease id:tokens" -> admission time (tokens log)
    P:tsum   string       sum of the tokens in P:tok
    P:conc   sorted set   lease id -> lease expiry             (concurrency leases)
    P:pause  string       time the pause ends

Every key expires once idle, so abandoned buckets clean themselves up.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "KEYS_PER_BUCKET", "PAUSE", "RELEASE", "RENEW", "USAGE"]

KEYS_PER_BUCKET = 5

# Shared helpers: the clock, and trimming a tokens log while keeping its sum right.
_PRELUDE = r"""
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function fmt(n) return string.format('%d', n) end
local function amount(member) return tonumber(string.match(member, ':(%d+)$')) or 0 end
-- Drop entries at or before `horizon`; return the sum of what is left (and store it,
-- expiring with the log after `keep` ms).
local function trim_tokens(tok, tsum, horizon, keep)
  local stored = tonumber(redis.call('GET', tsum) or '-1')
  local sum = stored
  local gone = redis.call('ZRANGEBYSCORE', tok, '-inf', fmt(horizon))
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', tok, '-inf', fmt(horizon))
  end
  local left = redis.call('ZCARD', tok)
  if left == 0 then
    sum = 0
  elseif sum < 0 then
    -- The sum key vanished (evicted): count again from the log.
    sum = 0
    for _, m in ipairs(redis.call('ZRANGE', tok, 0, -1)) do sum = sum + amount(m) end
  else
    for _, m in ipairs(gone) do sum = sum - amount(m) end
    if sum < 0 then sum = 0 end
  end
  if sum ~= stored and left > 0 then
    redis.call('SET', tsum, fmt(sum), 'PX', fmt(keep))
  elseif left == 0 and stored >= 0 then
    redis.call('DEL', tsum)
  end
  return sum
end
"""

#: KEYS: 5 per bucket. ARGV: window µs, lease id, tokens, lease ttl µs, then per bucket
#: requests/min, tokens/min, max concurrency (0: no limit). Idempotent per lease id.
#: Returns {1, now} when admitted, else {0, then per refusing bucket: index (0-based),
#: pause wait, requests wait, tokens wait, concurrency full (0/1)} with waits in µs.
ACQUIRE = (
    _PRELUDE
    + r"""
local now = clock()
local window = tonumber(ARGV[1])
local id = ARGV[2]
local tokens = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local horizon = now - window
local keep = window / 1000 + 1000
local buckets = #KEYS / 5
-- Already admitted under this lease id (a retry after an answer was lost to a timeout):
-- admitted again without being counted twice.
for i = 0, buckets - 1 do
  local rpm, tpm, cc = tonumber(ARGV[5+i*3]), tonumber(ARGV[6+i*3]), tonumber(ARGV[7+i*3])
  if (rpm > 0 and redis.call('ZSCORE', KEYS[i*5+1], id))
      or (cc > 0 and redis.call('ZSCORE', KEYS[i*5+4], id))
      or (tpm > 0 and redis.call('ZSCORE', KEYS[i*5+2], id .. ':' .. fmt(tokens))) then
    return {1, now}
  end
end
local refused = {0}
local sums = {}
for i = 0, buckets - 1 do
  local req, tok, tsum = KEYS[i*5+1], KEYS[i*5+2], KEYS[i*5+3]
  local conc, pause = KEYS[i*5+4], KEYS[i*5+5]
  local rpm, tpm, cc = tonumber(ARGV[5+i*3]), tonumber(ARGV[6+i*3]), tonumber(ARGV[7+i*3])
  local wait_pause, wait_req, wait_tok, full = 0, 0, 0, 0
  local paused = tonumber(redis.call('GET', pause) or '0')
  if paused > now then wait_pause = paused - now end
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', req, '-inf', fmt(horizon))
    local count = redis.call('ZCARD', req)
    if count >= rpm then
      -- The oldest entry that must leave the window before one more request fits.
      local oldest = redis.call('ZRANGE', req, count - rpm, count - rpm, 'WITHSCORES')
      wait_req = tonumber(oldest[2]) + window - now
    end
  end
  if tpm > 0 then
    local sum = trim_tokens(tok, tsum, horizon, keep)
    sums[i] = sum
    local excess = sum + math.min(tokens, tpm) - tpm
    if excess > 0 then
      wait_tok = window
      local start = 0
      while excess > 0 do
        local page = redis.call('ZRANGE', tok, start, start + 99, 'WITHSCORES')
        if #page == 0 then break end
        for j = 1, #page, 2 do
          excess = excess - amount(page[j])
          if excess <= 0 then
            wait_tok = tonumber(page[j+1]) + window - now
            break
          end
        end
        start = start + 100
      end
    end
  end
  if cc > 0 then
    redis.call('ZREMRANGEBYSCORE', conc, '-inf', fmt(now))
    if redis.call('ZCARD', conc) >= cc then full = 1 end
  end
  if wait_pause > 0 or wait_req > 0 or wait_tok > 0 or full == 1 then
    for _, v in ipairs({i, wait_pause, wait_req, wait_tok, full}) do
      refused[#refused + 1] = v
    end
  end
end
if #refused > 1 then
  return refused
end
keep = fmt(keep)
for i = 0, buckets - 1 do
  local req, tok, tsum, conc = KEYS[i*5+1], KEYS[i*5+2], KEYS[i*5+3], KEYS[i*5+4]
  local rpm, tpm, cc = tonumber(ARGV[5+i*3]), tonumber(ARGV[6+i*3]), tonumber(ARGV[7+i*3])
  if rpm > 0 then
    redis.call('ZADD', req, fmt(now), id)
    redis.call('PEXPIRE', req, keep)
  end
  if tpm > 0 then
    redis.call('ZADD', tok, fmt(now), id .. ':' .. fmt(tokens))
    redis.call('SET', tsum, fmt(sums[i] + tokens), 'PX', keep)
    redis.call('PEXPIRE', tok, keep)
  end
  if cc > 0 then
    redis.call('ZADD', conc, fmt(now + ttl), id)
    redis.call('PEXPIRE', conc, fmt(ttl / 1000 + 1000))
  end
end
return {1, now}
"""
)

#: KEYS: req, tok, tsum, conc of each bucket the lease holds. ARGV: lease id, tokens
#: reserved, tokens used (-1: keep the reservation), 1 to also forget the request
#: (a call admitted but never sent). Idempotent: running it twice changes nothing more.
RELEASE = r"""
local id, old, new, refund = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
for i = 0, #KEYS / 4 - 1 do
  local req, tok, tsum, conc = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  redis.call('ZREM', conc, id)
  if refund == '1' then redis.call('ZREM', req, id) end
  if new >= 0 and new ~= old then
    local before = id .. ':' .. string.format('%d', old)
    local score = redis.call('ZSCORE', tok, before)
    -- Gone from the log: it left the window, and a correction no longer matters.
    if score then
      redis.call('ZREM', tok, before)
      redis.call('ZADD', tok, score, id .. ':' .. string.format('%d', new))
      if redis.call('EXISTS', tsum) == 1 then
        redis.call('INCRBY', tsum, string.format('%d', new - old))
      end
    end
  end
end
return 1
"""

#: KEYS: a conc key per lease. ARGV: ttl µs, then the lease ids in KEYS order.
RENEW = (
    _PRELUDE
    + r"""
local expiry = fmt(clock() + tonumber(ARGV[1]))
for i = 1, #KEYS do
  -- XX: a lease that already expired is not revived (its slot may be taken).
  redis.call('ZADD', KEYS[i], 'XX', expiry, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], fmt(tonumber(ARGV[1]) / 1000 + 1000))
end
return 1
"""
)

#: KEYS: a pause key. ARGV: pause length µs. Extends a pause, never shortens one.
PAUSE = (
    _PRELUDE
    + r"""
local length = tonumber(ARGV[1])
local ends = clock() + length
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if ends > current then
  redis.call('SET', KEYS[1], fmt(ends), 'PX', fmt(length / 1000 + 1))
end
return 1
"""
)

#: KEYS: req, tok, tsum, conc of one bucket. ARGV: window µs.
#: Returns {requests, tokens, in flight} after trimming.
USAGE = (
    _PRELUDE
    + r"""
local now = clock()
local horizon = now - tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(horizon))
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', fmt(now))
local sum = trim_tokens(KEYS[2], KEYS[3], horizon, tonumber(ARGV[1]) / 1000 + 1000)
return {redis.call('ZCARD', KEYS[1]), sum, redis.call('ZCARD', KEYS[4])}
"""
)
