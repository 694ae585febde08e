-- slot.lua: a counting semaphore per key (concurrency limits): take or renew a slot, or
-- give it up. Slots expire like leases, so a dead worker's slot comes free after its ttl.
--
-- KEYS[1] slots  ZSET holder -> expiry (seconds, backend clock); the key itself expires
--                with its last slot
-- ARGV[1] P, ARGV[2] now, ARGV[3] "acquire" | "release", ARGV[4] holder,
-- ARGV[5] limit, ARGV[6] ttl seconds (both for acquire)
-- Returns: 1 when the holder holds a slot afterwards (acquire), else 0; release: 0.

local holder = ARGV[4]
-- Slots of another type (damage) hold nothing that can be read: start them again.
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'zset' and kind ~= 'none' then
  note('concurrency slots ' .. KEYS[1] .. ' were a ' .. kind .. ', not a ZSET: reset')
  redis.call('DEL', KEYS[1])
end
if ARGV[3] == 'release' then
  redis.call('ZREM', KEYS[1], holder)
  return 0
end
-- A slot is free once expiry <= now.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(NOW))
if not redis.call('ZSCORE', KEYS[1], holder)
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('ZADD', KEYS[1], num(NOW + tonumber(ARGV[6])), holder)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(last[2]) - NOW) * 1000) + 1)
return 1
