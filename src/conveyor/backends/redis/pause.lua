-- pause.lua: pause or resume a queue. claim.lua and park.lua skip the lanes of paused
-- queues; resuming wakes parked workers for the queue's ready jobs (one per job, as an
-- enqueue would).
--
-- KEYS[1] paused   SET paused queue names
-- KEYS[2] lanes    SET of non-empty ready lanes
-- KEYS[3] waiters  HASH parked worker -> routing and deadline
-- derived: ready lanes of the queue, wake lists
-- ARGV[1] P, ARGV[2] now, ARGV[3] "pause" | "resume", ARGV[4] queue
-- Returns: nothing.

local queue = ARGV[4]
if ARGV[3] == 'pause' then
  redis.call('SADD', KEYS[1], queue)
  return {}
end
if redis.call('SREM', KEYS[1], queue) == 0 then return {} end
local touched = {}
for _, lane in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local _, q = parse_lane(lane)  -- nil for damage, which claim.lua removes
  if q == queue then
    local n = redis.pcall('ZCARD', P .. 'ready:' .. lane)
    local m = redis.pcall('LLEN', P .. 'fifo:' .. lane)
    touch(touched, lane, (failed(n) and 0 or n) + (failed(m) and 0 or m), nil)
  end
end
wake(KEYS[3], touched, KEYS[1])
return {}
