-- lease.lua: take, renew or give up a named lease (the scheduler's leader lease).
--
-- KEYS[1] locks  HASH lease name -> owner .. "|" .. expiry (seconds, backend clock)
-- ARGV[1] P, ARGV[2] now, ARGV[3] "acquire" | "release", ARGV[4] name, ARGV[5] owner,
-- ARGV[6] ttl seconds (acquire)
-- Returns: 1 when the owner holds the lease afterwards (acquire) or gave it up (release),
-- else 0. A lease is free when absent or expired (expiry <= now), or when its entry cannot
-- be read (damage: the next acquire overwrites it).

local name, owner = ARGV[4], ARGV[5]
local current = redis.call('HGET', KEYS[1], name)
local holder, expiry = nil, nil
local bar = current and string.find(current, '|', 1, true)
if bar then
  holder, expiry = string.sub(current, 1, bar - 1), number(string.sub(current, bar + 1))
end
if current and not expiry then
  note('lease ' .. name .. ' held an unreadable entry; treated as free')
  holder = nil
end
if ARGV[3] == 'release' then
  if holder == owner then
    redis.call('HDEL', KEYS[1], name)
    return 1
  end
  return 0
end
if holder and holder ~= owner and expiry > NOW then
  return 0
end
redis.call('HSET', KEYS[1], name, owner .. '|' .. num(NOW + tonumber(ARGV[6])))
return 1
