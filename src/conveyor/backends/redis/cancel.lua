-- cancel.lua: cancel a scheduled, ready or running job (a running job's worker is fenced).
--
-- KEYS[1] scheduled  ZSET run_at -> id
-- KEYS[2] lanes      SET of non-empty ready lanes
-- KEYS[3] leases     ZSET lease expiry -> id
-- KEYS[4] unique     HASH unique key -> id
-- KEYS[5] counts     HASH "state:priority:queue" -> jobs
-- KEYS[6] cancelled  ZSET finished_at -> id of cancelled jobs
-- derived: the job hash, its ready lane
-- ARGV[1] P, ARGV[2] now, ARGV[3] job id
-- Returns: 1 if cancelled, 0 if the job is unknown or already final (or its key is not a
-- hash: damage). A ready record whose lane cannot be named (damage) leaves its lane entry
-- behind; claim.lua drops it as stale.

local id = ARGV[3]
local key = job_key(id)
local f = redis.pcall('HMGET', key, 'state', 'priority', 'queue', 'task', 'seq', 'unique_key')
if failed(f) then return 0 end
local state = f[1]
if state == 'scheduled' then
  redis.call('ZREM', KEYS[1], id)
elseif state == 'ready' then
  if usable(f[2], f[3], f[4]) then
    drop_from_lane(KEYS[2], lane_of(f[2], f[3], f[4]), id, f[5])
  end
elseif state == 'running' then
  redis.call('ZREM', KEYS[3], id)
  clear_lease(key)
else
  return 0
end
redis.call('HSET', key, 'state', 'cancelled', 'updated_at', NOW, 'finished_at', NOW)
redis.call('ZADD', KEYS[6], NOW, id)
move(KEYS[5], state, 'cancelled', f[2], f[3])
release_unique(KEYS[4], f[6], id)
return 1
