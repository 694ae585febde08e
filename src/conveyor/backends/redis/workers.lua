-- workers.lua: the live-worker registry: register (refresh), unregister, or list.
--
-- KEYS[1] workers  HASH worker id -> last_seen .. "|" .. JSON info
-- KEYS[2] expiry   ZSET drop-off time -> worker id
-- ARGV[1] P, ARGV[2] now, ARGV[3] "register" | "unregister" | "list", ARGV[4] worker id,
-- ARGV[5] ttl seconds, ARGV[6] JSON info
-- Returns: for "list", the HGETALL of live workers; else nothing. The caller skips an
-- entry it cannot read; an entry without an expiry (damage: register writes both at once)
-- is dropped here, as it would otherwise never leave.

local op = ARGV[3]
if op == 'register' then
  redis.call('HSET', KEYS[1], ARGV[4], num(NOW) .. '|' .. ARGV[6])
  redis.call('ZADD', KEYS[2], NOW + tonumber(ARGV[5]), ARGV[4])
  return {}
elseif op == 'unregister' then
  redis.call('HDEL', KEYS[1], ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[4])
  return {}
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', NOW)) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local flat = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #flat, 2 do
  if redis.call('ZSCORE', KEYS[2], flat[i]) then
    live[#live + 1] = flat[i]
    live[#live + 1] = flat[i + 1]
  else
    note('worker ' .. flat[i] .. ' had a registry entry without an expiry: dropped')
    redis.call('HDEL', KEYS[1], flat[i])
  end
end
return live
