-- park.lua: an idle worker checks for work and, finding none, registers as a waiter in
-- the same atomic step, so an enqueue can never slip between the check and the wait (no
-- lost wake-ups). Scripts that make work ready push a token to its wake list.
--
-- KEYS[1] lanes      SET of non-empty ready lanes
-- KEYS[2] scheduled  ZSET run_at -> id
-- KEYS[3] waiters    HASH parked worker -> {q, p, t routing lists, d deadline}
-- derived: the waiter's wake list
-- ARGV[1] P, ARGV[2] now, ARGV[3] waiter id, ARGV[4] routing JSON, ARGV[5] timeout (s)
-- Returns: "0" when matching work is ready or due now; else the seconds to wait, capped
--   by the next scheduled job.

local waiter = ARGV[3]
redis.call('DEL', P .. 'wake:' .. waiter)  -- tokens from an earlier wait are stale
local spec = cjson.decode(ARGV[4])
local routing = compile(spec)
for _, lane in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local prio, queue, task = parse_lane(lane)
  if matches(routing, prio, queue, task) then
    redis.call('HDEL', KEYS[3], waiter)
    return '0'
  end
end
local wait = tonumber(ARGV[5])
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[2] then
  wait = math.min(wait, tonumber(first[2]) - NOW)
end
if wait <= 0 then
  redis.call('HDEL', KEYS[3], waiter)
  return '0'
end
spec.d = NOW + wait
redis.call('HSET', KEYS[3], waiter, cjson.encode(spec))
return num(wait)
