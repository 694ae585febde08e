-- quarantine.lua: dead-letter claimed jobs whose records cannot be read (the caller could
-- not decode them), fenced by their lease tokens. The record's fields are kept as stored
-- (only state, lease and failure fields are written), for inspection and repair.
-- A record whose priority or queue cannot name a count (damaged after its claim) is only
-- taken out of the lease index: it is kept where it is, and noted.
--
-- KEYS[1] leases   ZSET lease expiry -> id
-- KEYS[2] unique   HASH unique key -> id
-- KEYS[3] counts   HASH "state:priority:queue" -> jobs
-- KEYS[4] dead     ZSET finished_at -> id of dead jobs
-- derived: job hashes
-- ARGV[1] P, ARGV[2] now, then triples of (job id, lease token, last_error)
-- Returns: {notes, then per job "1" quarantined, "0" stale lease (nothing changed),
--   "2" left out of every index (see notes)}.

local out = {{}}
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local key = job_key(id)
  local f = redis.pcall('HMGET', key, 'state', 'lease_token', 'priority', 'queue',
    'unique_key')
  if failed(f) or f[1] ~= 'running' or f[2] ~= ARGV[i + 1] then
    out[#out + 1] = '0'
  elseif not usable(f[3], f[4]) then
    redis.call('ZREM', KEYS[1], id)
    note('running job ' .. id .. ' has no usable priority or queue (record kept): '
      .. 'dropped from the lease index')
    out[#out + 1] = '2'
  else
    redis.call('HSET', key, 'state', 'dead', 'last_error', ARGV[i + 2], 'failed_at', NOW,
      'finished_at', NOW, 'updated_at', NOW)
    clear_lease(key)
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[4], NOW, id)
    move(KEYS[3], 'running', 'dead', f[3], f[4])
    release_unique(KEYS[2], f[5], id)
    out[#out + 1] = '1'
  end
end
out[1] = NOTES
return out
