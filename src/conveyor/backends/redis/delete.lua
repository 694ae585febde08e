-- delete.lua: delete jobs that are in a final state (succeeded, dead, cancelled) by id,
-- with every index entry they have; jobs still scheduled, ready or running are left alone.
--
-- KEYS[1] all        ZSET seq -> id: the index of a store made before its buckets
--                    (lib.lua)
-- KEYS[2] counts     HASH "state:priority:queue" -> jobs
-- KEYS[3] unique     HASH unique key -> id (a final job holds none; checked anyway)
-- KEYS[4] succeeded  ZSET finished_at -> id
-- KEYS[5] dead       ZSET finished_at -> id
-- KEYS[6] cancelled  ZSET finished_at -> id
-- derived: job hashes, index buckets
-- ARGV[1] P, ARGV[2] now (unused), ARGV[3..] job ids
-- Returns: how many jobs were deleted.

local done = {succeeded = KEYS[4], dead = KEYS[5], cancelled = KEYS[6]}
local deleted = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = job_key(id)
  local f = redis.pcall('HMGET', key, 'state', 'priority', 'queue', 'unique_key', 'seq')
  if failed(f) then f = {} end  -- a key of another type is not a job to delete
  -- A repeated id finds no hash the second time, so it is counted once.
  if f[1] and done[f[1]] then
    redis.call('DEL', key)
    unindex(KEYS[1], id, f[5])
    redis.call('ZREM', done[f[1]], id)
    count(KEYS[2], f[1], f[2], f[3], -1)
    release_unique(KEYS[3], f[4], id)
    deleted = deleted + 1
  end
end
return deleted
