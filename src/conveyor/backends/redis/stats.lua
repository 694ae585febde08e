-- stats.lua: job totals per state, priority and queue, read in one atomic step.
--
-- KEYS[1] counts     HASH "state:priority:queue" -> jobs
-- KEYS[2] scheduled  ZSET run_at -> id
-- derived: job hashes of due scheduled jobs
-- ARGV[1] P, ARGV[2] now
-- Returns: {counts as HGETALL, then priority, queue of each scheduled job already due
--   (reported as ready, as claim would promote it)}

local out = {redis.call('HGETALL', KEYS[1])}
local due = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', NOW)) do
  local f = redis.pcall('HMGET', job_key(id), 'priority', 'queue')
  -- A damaged record is not counted (claim.lua drops it from the schedule and notes it).
  if not failed(f) and usable(f[1], f[2]) then
    due[#due + 1] = f[1]
    due[#due + 1] = f[2]
  end
end
out[2] = due
return out
