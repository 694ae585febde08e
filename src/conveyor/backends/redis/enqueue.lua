-- enqueue.lua: store a batch of new jobs, in order, and wake parked workers.
--
-- KEYS[1] all        ZSET seq -> id, every job (query order)
-- KEYS[2] seq        STRING, the store's enqueue counter
-- KEYS[3] lanes      SET of non-empty ready lanes
-- KEYS[4] scheduled  ZSET run_at -> id, jobs waiting for their time
-- KEYS[5] unique     HASH unique key -> id of the active job holding it
-- KEYS[6] counts     HASH "state:priority:queue" -> jobs
-- KEYS[7] waiters    HASH parked worker -> routing and deadline (park.lua)
-- derived: job hashes, ready lanes, wake lists
-- ARGV[1] P, ARGV[2] now, ARGV[3] n jobs, then per job 10 fields:
--   id, task, queue, priority, payload, headers (JSON), max_retries, timeout,
--   run_at ("" = now), unique ("" = none, else "u" .. key)
-- Returns: per job, its id and "1" when it already existed (same unique key or id).

local n = tonumber(ARGV[3])
local out = {}
local touched = {}
local seq = redis.call('INCRBY', KEYS[2], n) - n
for i = 0, n - 1 do
  local a = 4 + i * 10
  local id, task, queue, prio = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local ukey = nil
  if ARGV[a + 9] ~= '' then ukey = string.sub(ARGV[a + 9], 2) end
  local holder = ukey and redis.call('HGET', KEYS[5], ukey)
  local key = job_key(id)
  if holder then
    out[#out + 1] = holder
    out[#out + 1] = '1'
  elseif redis.call('EXISTS', key) == 1 then
    -- A retried enqueue of the same id (e.g. after a timeout) must not store it twice.
    out[#out + 1] = id
    out[#out + 1] = '1'
  else
    seq = seq + 1
    local run_at = NOW
    if ARGV[a + 8] ~= '' then run_at = tonumber(ARGV[a + 8]) end
    local state = 'ready'
    if run_at > NOW then state = 'scheduled' end
    redis.call('HSET', key, 'id', id, 'task', task, 'queue', queue, 'priority', prio,
      'state', state, 'payload', ARGV[a + 4], 'headers', ARGV[a + 5], 'attempts', 0,
      'max_retries', ARGV[a + 6], 'timeout', ARGV[a + 7], 'run_at', run_at,
      'created_at', NOW, 'updated_at', NOW, 'recoveries', 0, 'seq', seq)
    if ukey then
      redis.call('HSET', key, 'unique_key', ukey)
      redis.call('HSET', KEYS[5], ukey, id)
    end
    redis.call('ZADD', KEYS[1], seq, id)
    count(KEYS[6], state, prio, queue, 1)
    if state == 'ready' then
      touch(touched, make_ready(KEYS[3], id, prio, queue, task, run_at, seq), 1, nil)
    else
      redis.call('ZADD', KEYS[4], run_at, id)
      touch(touched, lane_of(prio, queue, task), 0, run_at)
    end
    out[#out + 1] = id
    out[#out + 1] = '0'
  end
end
wake(KEYS[7], touched)
return out
