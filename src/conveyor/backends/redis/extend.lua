-- extend.lua: push the expiry of held leases forward (the heartbeat).
--
-- KEYS[1] leases    ZSET lease expiry (whole seconds, rounded up: claim.lua) -> id
-- KEYS[2] counters  HASH fenced / recovered / poisoned
-- derived: job hashes
-- ARGV[1] P, ARGV[2] now, ARGV[3] lease seconds, then pairs of (job id, lease token)
-- Returns: "1" per lease still held, "0" per stale one (counted as fenced), as for a job
-- key of another type than a hash (damage).

local expires = NOW + tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local key = job_key(id)
  local f = redis.pcall('HMGET', key, 'state', 'lease_token')
  if failed(f) then f = {} end
  if f[1] == 'running' and f[2] == ARGV[i + 1] then
    redis.call('HSET', key, 'lease_expires_at', expires)
    redis.call('ZADD', KEYS[1], math.ceil(expires), id)  -- as claim.lua's LEASE_SCORE
    out[#out + 1] = '1'
  else
    tally(KEYS[2], 'fenced', 1)
    out[#out + 1] = '0'
  end
end
return out
