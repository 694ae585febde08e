-- history.lua: per-minute counts of finished attempts per queue (throughput charts):
-- add points (summed with what is stored) and prune, or read from a minute on.
--
-- KEYS[1] minutes  ZSET minute -> minute: the index of stored minutes, for pruning
-- derived: P .. "history:" .. minute  HASH "s" .. queue -> succeeded, "f" .. queue -> failed
-- ARGV[1] P, ARGV[2] now, ARGV[3] "record" | "read", then
--   record: ARGV[4] keep (seconds), then groups of 4: minute, queue, succeeded, failed
--   read:   ARGV[4] since (minutes >= since are returned)
-- Returns: record: nothing; read: flat minute, HGETALL array pairs, by minute (the caller
-- skips entries it cannot read). A stored count that is not an integer (damage) starts
-- again from the added one.

local function hkey(minute)
  return P .. 'history:' .. minute
end

if ARGV[3] == 'read' then
  local out = {}
  for _, minute in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[4], '+inf')) do
    out[#out + 1] = minute
    local fields = redis.pcall('HGETALL', hkey(minute))
    if failed(fields) then fields = {} end
    out[#out + 1] = fields
  end
  return out
end

for i = 5, #ARGV, 4 do
  local minute, queue = ARGV[i], ARGV[i + 1]
  local key = hkey(minute)
  for j, kind in ipairs({'s', 'f'}) do
    local field = kind .. queue
    if failed(redis.pcall('HINCRBY', key, field, ARGV[i + 1 + j])) then
      note('history ' .. key .. ' field ' .. field .. ' was not an integer: reset')
      if redis.call('TYPE', key).ok ~= 'hash' then redis.call('DEL', key) end
      redis.call('HSET', key, field, ARGV[i + 1 + j])
    end
  end
  redis.call('ZADD', KEYS[1], minute, minute)
end
-- Minutes older than keep seconds before now go (strictly older, as the protocol says).
local cutoff = '(' .. num(NOW - tonumber(ARGV[4]))
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
for _, minute in ipairs(old) do
  redis.call('DEL', hkey(minute))
end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff) end
return {}
