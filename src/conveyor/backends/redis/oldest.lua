-- oldest.lua: per queue, the run_at of its oldest ready job (due scheduled jobs count,
-- paused queues too), read in one atomic step.
--
-- KEYS[1] lanes      SET of non-empty ready lanes
-- KEYS[2] scheduled  ZSET run_at -> id
-- derived: ready lanes, job hashes of due scheduled jobs and of each lane's first job to
--   run now
-- ARGV[1] P, ARGV[2] now
-- Returns: flat queue, run_at pairs (each queue once).

local oldest = {}
local function see(queue, run_at)
  if not oldest[queue] or run_at < oldest[queue] then oldest[queue] = run_at end
end
-- Damage (a member that is not a lane, a lane or job key of another type, a job without
-- a queue) is skipped: claim.lua repairs it and says so.
for _, lane in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local _, queue = parse_lane(lane)
  -- A lane's oldest run_at is its ZSET part's lowest score or its LIST part's first job's.
  local first = redis.pcall('ZRANGE', P .. 'ready:' .. lane, 0, 0, 'WITHSCORES')
  if queue and not failed(first) and first[2] then
    see(queue, tonumber(first[2]))
  end
  local id = queue and redis.pcall('LINDEX', P .. 'fifo:' .. lane, 0)
  if type(id) == 'string' then
    local f = redis.pcall('HMGET', job_key(id), 'run_at', 'created_at')
    local run_at = not failed(f) and number(f[1] or f[2])  -- run_at left out: created_at
    if run_at then see(queue, run_at) end
  end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', num(NOW), 'WITHSCORES')
for i = 1, #due, 2 do
  local queue = redis.pcall('HGET', job_key(due[i]), 'queue')
  if type(queue) == 'string' then see(queue, tonumber(due[i + 1])) end
end
local out = {}
for queue, run_at in pairs(oldest) do
  out[#out + 1] = queue
  out[#out + 1] = num(run_at)
end
return out
