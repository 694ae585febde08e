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
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local key = job_key(id)
  local f = redis.pcall('HMGET', key, 'state', 'lease_token', 'priority', 'queue',
    'unique_key')
  if failed(f) then f = {} end
  if f[1] == 'running' and f[2] == ARGV[i + 1] then
    redis.call('HSET', key, 'state', 'succeeded', 'updated_at', NOW, 'finished_at', NOW)
    clear_lease(key)
    if ARGV[i + 2] == '' then
      redis.call('HDEL', key, 'result')
    else
      redis.call('HSET', key, 'result', string.sub(ARGV[i + 2], 2))
    end
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[5], NOW, id)
    move(KEYS[3], 'running', 'succeeded', f[3], f[4])
    release_unique(KEYS[2], f[5], id)
    out[#out + 1] = '1'
  else
    tally(KEYS[4], 'fenced', 1)
    out[#out + 1] = '0'
  end
end
return out
