-- fail.lua: a running job failed: schedule its retry, or dead-letter it; batched.
--
-- KEYS[1] leases     ZSET lease expiry -> id
-- KEYS[2] unique     HASH unique key -> id
-- KEYS[3] counts     HASH "state:priority:queue" -> jobs
-- KEYS[4] counters   HASH fenced / recovered / poisoned
-- KEYS[5] dead       ZSET finished_at -> id of dead jobs
-- KEYS[6] scheduled  ZSET run_at -> id
-- KEYS[7] waiters    HASH parked worker -> routing and deadline
-- KEYS[8] paused     SET paused queue names (their retries wake nobody)
-- derived: job hashes (their attempt_log: attempts.lua), wake lists
-- ARGV[1] P, ARGV[2] now, then groups of 6: job id, lease token, error,
--   traceback ("" = none, else "t" .. text), retry_in ("" = dead, else seconds: the retry
--   is due at NOW + retry_in, on the same clock as the lease, never the worker's), and the
--   attempt log entry's "error" and "traceback" members (JSON text, cut to the log's bounds)
-- Each failure adds its attempt to the job's attempt log: "failed" when it is retried,
-- "dead" otherwise.
-- Returns: "1" per job handled, "0" per stale lease (counted as fenced), as for a job key
-- of another type than a hash (damage). A retry of a record without a usable priority,
-- queue or task (damage) is scheduled but wakes nobody, and claim.lua reports it when due.

-- include attempts.lua

local out = {}
local touched = {}
for i = 3, #ARGV, 6 do
  local id = ARGV[i]
  local key = job_key(id)
  local f = redis.pcall('HMGET', key, 'state', 'lease_token', 'priority', 'queue',
    'unique_key', 'task', 'attempts', 'worker_id', 'started_at', 'attempt_log')
  if failed(f) then f = {} end
  if f[1] == 'running' and f[2] == ARGV[i + 1] then
    local outcome = 'failed'
    if ARGV[i + 4] == '' then outcome = 'dead' end
    local entry = log_entry(f[7], outcome, f[8], f[9], ARGV[i + 5])
    redis.call('HSET', key, 'last_error', ARGV[i + 2], 'updated_at', NOW, 'attempt_log',
      log_append(id, f[10], entry))
    if ARGV[i + 3] == '' then
      redis.call('HDEL', key, 'traceback')
    else
      redis.call('HSET', key, 'traceback', string.sub(ARGV[i + 3], 2))
    end
    clear_lease(key)
    redis.call('ZREM', KEYS[1], id)
    if ARGV[i + 4] == '' then
      redis.call('HSET', key, 'state', 'dead', 'failed_at', NOW, 'finished_at', NOW)
      redis.call('ZADD', KEYS[5], NOW, id)
      move(KEYS[3], 'running', 'dead', f[3], f[4])
      release_unique(KEYS[2], f[5], id)
    else
      local run_at = NOW + tonumber(ARGV[i + 4])
      redis.call('HSET', key, 'state', 'scheduled', 'run_at', num(run_at))
      redis.call('ZADD', KEYS[6], run_at, id)
      move(KEYS[3], 'running', 'scheduled', f[3], f[4])
      if usable(f[3], f[4], f[6]) then
        touch(touched, lane_of(f[3], f[4], f[6]), 0, run_at)
      end
    end
    out[#out + 1] = '1'
  else
    tally(KEYS[4], 'fenced', 1)
    out[#out + 1] = '0'
  end
end
wake(KEYS[7], touched, KEYS[8])
return out
