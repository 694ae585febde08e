-- purge.lua: delete finished jobs of some final states, oldest first, one batch per call.
--
-- KEYS[1] all     ZSET seq -> id: the index of a store made before its buckets (lib.lua)
-- KEYS[2] counts  HASH "state:priority:queue" -> jobs
-- KEYS[3..] one ZSET finished_at -> id per state to purge (succeeded, dead, cancelled)
-- derived: job hashes, index buckets
-- ARGV[1] P, ARGV[2] now, ARGV[3] older than ("" = any age, else seconds before NOW: an
-- age, so the caller's clock never decides), ARGV[4] batch, ARGV[5..] the state name of
-- each KEYS[3..]
-- Returns: {jobs deleted, "1" if the batch was full (call again)}

local before = '+inf'
if ARGV[3] ~= '' then before = '(' .. num(NOW - tonumber(ARGV[3])) end
local budget = tonumber(ARGV[4])
local deleted = 0
for k = 3, #KEYS do
  if budget <= 0 then break end
  local ids = redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', before, 'LIMIT', 0, budget)
  for _, id in ipairs(ids) do
    local key = job_key(id)
    local f = redis.pcall('HMGET', key, 'state', 'priority', 'queue', 'seq')
    if failed(f) then f = {} end  -- a key of another type only leaves the index
    redis.call('ZREM', KEYS[k], id)
    if f[1] == ARGV[k + 2] then
      redis.call('DEL', key)
      unindex(KEYS[1], id, f[4])
      count(KEYS[2], f[1], f[2], f[3], -1)
      deleted = deleted + 1
    end
  end
  budget = budget - #ids
end
local more = '0'
if budget <= 0 then more = '1' end
return {deleted, more}
