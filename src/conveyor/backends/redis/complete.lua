-- complete.lua: mark running jobs succeeded and keep their results; batched, so a worker
-- acknowledges many finished jobs in one round trip.
--
-- KEYS[1] leases     ZSET lease expiry -> id
-- KEYS[2] unique     HASH unique key -> id
-- KEYS[3] counts     HASH "state:priority:queue" -> jobs
-- KEYS[4] counters   HASH fenced / recovered / poisoned
-- KEYS[5] succeeded  ZSET finished_at -> id (retention: purge.lua)
-- derived: job hashes
-- ARGV[1] P, ARGV[2] now, then triples of (job id, lease token, result) where result is
--   "" for none or "r" .. the result bytes
-- Returns: "1" per completed job, "0" per stale lease (counted as fenced). A job key of
-- another type than a hash (damage) is a stale lease too.

local out = {}
-- Index writes of the whole batch go out once at the end: one ZREM and one ZADD, and one
-- change per (state, priority, queue) total, whatever the number of jobs.
local ended = {}      -- ids leaving the leases
local finished = {}   -- NOW, id, ... for the succeeded index
local moved = {}      -- "priority:queue" -> {priority, queue, jobs}
local fenced = 0
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local key = job_key(id)
  local f = redis.pcall('HMGET', key, 'state', 'lease_token', 'priority', 'queue',
    'unique_key')
  if failed(f) then f = {} end
  if f[1] == 'running' and f[2] == ARGV[i + 1] then
    if ARGV[i + 2] == '' then
      redis.call('HSET', key, 'state', 'succeeded', 'updated_at', NOW, 'finished_at', NOW)
      redis.call('HDEL', key, 'lease_token', 'lease_expires_at', 'result')
    else
      redis.call('HSET', key, 'state', 'succeeded', 'updated_at', NOW, 'finished_at', NOW,
        'result', string.sub(ARGV[i + 2], 2))
      clear_lease(key)
    end
    ended[#ended + 1] = id
    finished[#finished + 1] = NOW
    finished[#finished + 1] = id
    local m = tostring(f[3]) .. ':' .. tostring(f[4])
    local c = moved[m]
    if not c then
      c = {f[3], f[4], 0}
      moved[m] = c
    end
    c[3] = c[3] + 1
    release_unique(KEYS[2], f[5], id)
    out[#out + 1] = '1'
  else
    fenced = fenced + 1
    out[#out + 1] = '0'
  end
end
-- In slices of at most 1,000 arguments (Lua's unpack has a stack limit).
for j = 1, #ended, 1000 do
  redis.call('ZREM', KEYS[1], unpack(ended, j, math.min(j + 999, #ended)))
end
for j = 1, #finished, 1000 do
  redis.call('ZADD', KEYS[5], unpack(finished, j, math.min(j + 999, #finished)))
end
for _, c in pairs(moved) do
  count(KEYS[3], 'running', c[1], c[2], -c[3])
  count(KEYS[3], 'succeeded', c[1], c[2], c[3])
end
if fenced > 0 then tally(KEYS[4], 'fenced', fenced) end
return out
