-- recover.lua: jobs whose lease expired go back to ready (one more recovery, the attempt
-- given back) or, once out of recoveries, to dead as poison pills. Each job leaves the
-- lease index in the same atomic step, so many workers may run this at once.
--
-- KEYS[1] leases    ZSET lease expiry -> id
-- KEYS[2] lanes     SET of non-empty ready lanes
-- KEYS[3] unique    HASH unique key -> id
-- KEYS[4] counts    HASH "state:priority:queue" -> jobs
-- KEYS[5] counters  HASH fenced / recovered / poisoned
-- KEYS[6] dead      ZSET finished_at -> id of dead jobs
-- KEYS[7] waiters   HASH parked worker -> routing and deadline
-- KEYS[8] paused    SET paused queue names (their jobs wake nobody)
-- derived: job hashes (their attempt_log: attempts.lua), ready lanes, wake lists
-- ARGV[1] P, ARGV[2] now, ARGV[3] max recoveries, ARGV[4] batch size,
-- ARGV[5], ARGV[6] the poison-pill reason before and after its recovery count,
-- ARGV[7] the "error" and "traceback" members of a lost attempt's log entry (JSON text)
-- Returns: {recovered, dead, "1" if a full batch was found (call again)}
--
-- Damage does not stop a sweep: an id whose key is not a hash, or a record without a
-- usable priority, queue or task, only leaves the lease index (the key is kept, noted);
-- a recovery count that is not an integer dead-letters the job as out of recoveries.
-- Each expired run, poison pill or not, adds a "lost" attempt to the job's attempt log,
-- numbered before the attempt is given back (the number the run had).

-- include attempts.lua

local max_recoveries = tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[4]))
local recovered, dead = 0, 0
local touched = {}
for _, id in ipairs(ids) do
  local key = job_key(id)
  redis.call('ZREM', KEYS[1], id)
  local f = redis.pcall('HMGET', key, 'state', 'priority', 'queue', 'task', 'run_at', 'seq',
    'unique_key', 'attempts', 'worker_id', 'started_at', 'attempt_log', 'created_at')
  if failed(f) then
    note('leased job ' .. id .. ': its key is not a hash (kept); dropped from the lease index')
  elseif f[1] == 'running' and not usable(f[2], f[3], f[4]) then
    count(KEYS[4], 'running', f[2], f[3], -1)
    note('leased job ' .. id .. ' has no usable priority, queue or task (record kept): '
      .. 'dropped from the lease index')
  elseif f[1] == 'running' then
    local n = redis.pcall('HINCRBY', key, 'recoveries', 1)
    if failed(n) then
      note('leased job ' .. id .. ': its recoveries count is not an integer; dead-lettered')
      n = max_recoveries
    end
    local log = log_append(id, f[11], log_entry(f[8], 'lost', f[9], f[10], ARGV[7]))
    give_back_attempt(key)
    clear_lease(key)
    if n >= max_recoveries then
      redis.call('HSET', key, 'state', 'dead', 'last_error', ARGV[5] .. n .. ARGV[6],
        'failed_at', NOW, 'finished_at', NOW, 'updated_at', NOW, 'attempt_log', log)
      redis.call('ZADD', KEYS[6], NOW, id)
      move(KEYS[4], 'running', 'dead', f[2], f[3])
      release_unique(KEYS[3], f[7], id)
      dead = dead + 1
    else
      redis.call('HSET', key, 'state', 'ready', 'updated_at', NOW, 'attempt_log', log)
      move(KEYS[4], 'running', 'ready', f[2], f[3])
      touch(touched, make_ready(KEYS[2], id, f[2], f[3], f[4], f[5] or f[12], f[6]), 1, nil)
      recovered = recovered + 1
    end
  end
end
if recovered > 0 then tally(KEYS[5], 'recovered', recovered) end
if dead > 0 then tally(KEYS[5], 'poisoned', dead) end
wake(KEYS[7], touched, KEYS[8])
local more = '0'
if #ids == tonumber(ARGV[4]) then more = '1' end
return {recovered, dead, more}
