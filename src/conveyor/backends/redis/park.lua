-- park.lua: an idle worker checks for work and, finding none, registers as a waiter in
-- the same atomic step, so an enqueue can never slip between the check and the wait (no
-- lost wake-ups). Scripts that make work ready push a token to its wake list. Ready jobs
-- of paused queues do not count (a worker would claim nothing and park again at once);
-- resuming the queue wakes it.
--
-- KEYS[1] lanes      SET of non-empty ready lanes
-- KEYS[2] scheduled  ZSET run_at -> id
-- KEYS[3] waiters    HASH parked worker -> {q, p, t routing lists, d deadline}
-- KEYS[4] paused     SET paused queue names
-- derived: the waiter's wake list
-- ARGV[1] P, ARGV[2] now, ARGV[3] waiter id, ARGV[4] routing JSON, ARGV[5] timeout (s)
-- Returns: "0" when matching work is ready or due now; else the seconds to wait, capped
--   by the next scheduled job (of a queue that is not paused).

local waiter = ARGV[3]
redis.call('DEL', P .. 'wake:' .. waiter)  -- tokens from an earlier wait are stale
local spec = cjson.decode(ARGV[4])
local routing = compile(spec)
local paused = paused_set(KEYS[4])
for _, lane in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local prio, queue, task = parse_lane(lane)  -- nil for damage, which claim.lua removes
  if prio and not (paused and paused[queue]) and matches(routing, prio, queue, task) then
    redis.call('HDEL', KEYS[3], waiter)
    return '0'
  end
end
local wait = tonumber(ARGV[5])
-- The next scheduled job caps the wait. With queues paused, the first few are checked for
-- one outside them (a paused queue's due job must not end every wait at once); past
-- SCAN_PAUSED of them the last one's time caps it, waking the worker early at worst.
local SCAN_PAUSED = 100
local function queue_of(id)
  local queue = redis.pcall('HGET', job_key(id), 'queue')
  if type(queue) == 'string' then return queue end
  return ''  -- damage: not a paused queue's job, so it caps the wait (claim reports it)
end
local firsts = redis.call('ZRANGE', KEYS[2], 0, paused and SCAN_PAUSED - 1 or 0, 'WITHSCORES')
for i = 1, #firsts, 2 do
  if not paused or i + 1 == 2 * SCAN_PAUSED
      or not paused[queue_of(firsts[i])] then
    wait = math.min(wait, tonumber(firsts[i + 1]) - NOW)
    break
  end
end
if wait <= 0 then
  redis.call('HDEL', KEYS[3], waiter)
  return '0'
end
spec.d = NOW + wait
redis.call('HSET', KEYS[3], waiter, cjson.encode(spec))
return num(wait)
