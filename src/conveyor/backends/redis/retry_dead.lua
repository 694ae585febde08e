-- retry_dead.lua: dead jobs back to ready with fresh attempts, oldest enqueue first. A job
-- whose unique key another active job now holds is skipped (it would run the work twice).
--
-- KEYS[1] dead      ZSET finished_at -> id of dead jobs
-- KEYS[2] lanes     SET of non-empty ready lanes
-- KEYS[3] unique    HASH unique key -> id
-- KEYS[4] counts    HASH "state:priority:queue" -> jobs
-- KEYS[5] waiters   HASH parked worker -> routing and deadline
-- KEYS[6] paused    SET paused queue names (their jobs wake nobody)
-- derived: job hashes, ready lanes, wake lists
-- ARGV[1] P, ARGV[2] now, ARGV[3] "1" for every dead job, else the ids follow from ARGV[4]
-- Returns: how many jobs went back to ready. A dead record without a usable priority,
-- queue or task (damage: repair it first) stays dead, and is noted.

local ids = {}
if ARGV[3] == '1' then
  ids = redis.call('ZRANGE', KEYS[1], 0, -1)
else
  for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local jobs = {}
local seen = {}
for _, id in ipairs(ids) do
  if not seen[id] then
    seen[id] = true
    local f = redis.pcall('HMGET', job_key(id), 'state', 'priority', 'queue', 'task', 'seq',
      'unique_key')
    if failed(f) then f = {} end
    if f[1] == 'dead' and not usable(f[2], f[3], f[4]) then
      note('dead job ' .. id .. ' has no usable priority, queue or task: not retried')
    elseif f[1] == 'dead' then
      jobs[#jobs + 1] = {id = id, prio = f[2], queue = f[3], task = f[4],
        seq = number(f[5]) or 0, ukey = f[6]}
    end
  end
end
table.sort(jobs, function(x, y) return x.seq < y.seq end)
local count_ok = 0
local touched = {}
for _, j in ipairs(jobs) do
  if not (j.ukey and redis.call('HEXISTS', KEYS[3], j.ukey) == 1) then
    local key = job_key(j.id)
    redis.call('HSET', key, 'state', 'ready', 'attempts', 0, 'recoveries', 0, 'run_at', NOW,
      'updated_at', NOW)
    redis.call('HDEL', key, 'finished_at')
    redis.call('ZREM', KEYS[1], j.id)
    if j.ukey then redis.call('HSET', KEYS[3], j.ukey, j.id) end
    move(KEYS[4], 'dead', 'ready', j.prio, j.queue)
    touch(touched, make_ready(KEYS[2], j.id, j.prio, j.queue, j.task, NOW, j.seq), 1, nil)
    count_ok = count_ok + 1
  end
end
wake(KEYS[5], touched, KEYS[6])
return count_ok
