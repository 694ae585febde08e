-- defer.lua: put a running job back to wait without using an attempt (rate limits,
-- RateLimited): scheduled at now + delay as a retry is (ready at once for delay <= 0),
-- attempt given back, lease dropped, unique key kept.
--
-- KEYS[1] leases     ZSET lease expiry -> id
-- KEYS[2] lanes      SET of non-empty ready lanes
-- KEYS[3] scheduled  ZSET run_at -> id
-- KEYS[4] counts     HASH "state:priority:queue" -> jobs
-- KEYS[5] counters   HASH fenced / recovered / poisoned
-- KEYS[6] waiters    HASH parked worker -> routing and deadline
-- KEYS[7] paused     SET paused queue names (their jobs wake nobody)
-- derived: the job hash, its ready lane, wake lists
-- ARGV[1] P, ARGV[2] now, ARGV[3] job id, ARGV[4] lease token, ARGV[5] delay (seconds),
-- ARGV[6] headers ("" = keep them, else "h" .. JSON)
-- Returns: "1" when deferred, "0" for a stale lease (counted as fenced), as for a job key
-- of another type than a hash (damage). A record without a usable priority, queue or task
-- (damage) cannot name a lane: it only leaves the lease index, and is noted.

local id = ARGV[3]
local key = job_key(id)
local f = redis.pcall('HMGET', key, 'state', 'lease_token', 'priority', 'queue', 'task', 'seq')
if failed(f) then f = {} end
if f[1] ~= 'running' or f[2] ~= ARGV[4] then
  tally(KEYS[5], 'fenced', 1)
  return '0'
end
if not usable(f[3], f[4], f[5]) then
  redis.call('ZREM', KEYS[1], id)
  count(KEYS[4], 'running', f[3], f[4], -1)
  note('running job ' .. id .. ' has no usable priority, queue or task (record kept): '
    .. 'dropped from the lease index')
  return '1'
end
local delay = tonumber(ARGV[5])
local run_at = NOW
if delay > 0 then run_at = NOW + delay end
give_back_attempt(key)
redis.call('HSET', key, 'run_at', num(run_at), 'updated_at', NOW)
if ARGV[6] ~= '' then
  redis.call('HSET', key, 'headers', string.sub(ARGV[6], 2))
end
clear_lease(key)
redis.call('ZREM', KEYS[1], id)
local touched = {}
if delay > 0 then
  redis.call('HSET', key, 'state', 'scheduled')
  redis.call('ZADD', KEYS[3], run_at, id)
  move(KEYS[4], 'running', 'scheduled', f[3], f[4])
  touch(touched, lane_of(f[3], f[4], f[5]), 0, run_at)
else
  redis.call('HSET', key, 'state', 'ready')
  move(KEYS[4], 'running', 'ready', f[3], f[4])
  touch(touched, make_ready(KEYS[2], id, f[3], f[4], f[5], run_at, f[6]), 1, nil)
end
wake(KEYS[6], touched, KEYS[7])
return '1'
