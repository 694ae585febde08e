-- rate.lua: take one start from a sliding window: at most `limit` starts per `period`.
--
-- KEYS[1] window  ZSET start time -> unique member, one per granted start; expires a
--                 period after the newest start (its entries are all stale by then)
-- ARGV[1] P, ARGV[2] now, ARGV[3] limit, ARGV[4] period (seconds), ARGV[5] a member
-- unique to this call (random)
-- Returns: "0" when granted (the start is recorded at now); else, recording nothing, the
-- seconds until the oldest of the `limit` newest starts leaves the window (> 0).

local limit, period = tonumber(ARGV[3]), tonumber(ARGV[4])
-- A window of another type (damage) holds nothing worth keeping: start it again.
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'zset' and kind ~= 'none' then
  note('rate window ' .. KEYS[1] .. ' was a ' .. kind .. ', not a ZSET: reset')
  redis.call('DEL', KEYS[1])
end
-- Starts at or before now - period are out of the window (it is (now - period, now]).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(NOW - period))
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  if limit <= 0 then return num(period) end
  local edge = redis.call('ZRANGE', KEYS[1], -limit, -limit, 'WITHSCORES')
  return num(math.max(tonumber(edge[2]) + period - NOW, 1e-6))
end
redis.call('ZADD', KEYS[1], num(NOW), ARGV[5])
redis.call('PEXPIRE', KEYS[1], math.ceil(period * 1000) + 1)
return '0'
