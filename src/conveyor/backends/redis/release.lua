-- release.lua: give running jobs back to ready at once, attempt returned (shutdown).
--
-- KEYS[1] leases    ZSET lease expiry -> id
-- KEYS[2] lanes     SET of non-empty ready lanes
-- KEYS[3] counts    HASH "state:priority:queue" -> jobs
-- KEYS[4] counters  HASH fenced / recovered / poisoned
-- KEYS[5] waiters   HASH parked worker -> routing and deadline
-- KEYS[6] paused    SET paused queue names (their jobs wake nobody)
-- derived: job hashes, ready lanes, wake lists
-- ARGV[1] P, ARGV[2] now, then pairs of (job id, lease token)
-- Returns: "1" per released job, "0" per stale lease (counted as fenced), as for a job
-- key of another type than a hash (damage). A record without a usable priority, queue or
-- task (damage) cannot name a lane: it only leaves the lease index, and is noted.

local out = {}
local touched = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local key = job_key(id)
  local f = redis.pcall('HMGET', key, 'state', 'lease_token', 'priority', 'queue', 'task',
    'run_at', 'seq', 'created_at')
  if failed(f) then f = {} end
  if f[1] == 'running' and f[2] == ARGV[i + 1] and not usable(f[3], f[4], f[5]) then
    redis.call('ZREM', KEYS[1], id)
    count(KEYS[3], 'running', f[3], f[4], -1)
    note('running job ' .. id .. ' has no usable priority, queue or task (record kept): '
      .. 'dropped from the lease index')
    out[#out + 1] = '1'
  elseif f[1] == 'running' and f[2] == ARGV[i + 1] then
    redis.call('HSET', key, 'state', 'ready', 'updated_at', NOW)
    give_back_attempt(key)
    clear_lease(key)
    redis.call('ZREM', KEYS[1], id)
    move(KEYS[3], 'running', 'ready', f[3], f[4])
    -- A job enqueued to run now has no run_at field: it is its created_at.
    touch(touched, make_ready(KEYS[2], id, f[3], f[4], f[5], f[6] or f[8], f[7]), 1, nil)
    out[#out + 1] = '1'
  else
    tally(KEYS[4], 'fenced', 1)
    out[#out + 1] = '0'
  end
end
wake(KEYS[5], touched, KEYS[6])
return out
