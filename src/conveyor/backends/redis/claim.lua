-- claim.lua: promote due scheduled jobs, then lease up to `limit` ready jobs the routing
-- matches: strict priority (high, normal, low) across every matching lane, then oldest
-- run_at, then enqueue order. Routing happens here, so a worker never sees other work.
-- Lanes of paused queues are skipped (their due scheduled jobs are still promoted).
--
-- KEYS[1] lanes      SET of non-empty ready lanes
-- KEYS[2] scheduled  ZSET run_at -> id
-- KEYS[3] leases     ZSET lease expiry -> id of each running job
-- KEYS[4] counts     HASH "state:priority:queue" -> jobs
-- KEYS[5] paused     SET paused queue names
-- derived: job hashes, ready lanes
-- ARGV[1] P, ARGV[2] now, ARGV[3] worker id, ARGV[4] limit, ARGV[5] lease seconds,
-- ARGV[6] token base (random; job i gets base .. "." .. i), ARGV[7] routing JSON,
-- ARGV[8] most scheduled jobs to promote in this call
-- Returns: one HGETALL array per leased job, in run order.

local limit = tonumber(ARGV[4])
local expires = NOW + tonumber(ARGV[5])

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[8]))
for _, id in ipairs(due) do
  local key = job_key(id)
  local f = redis.call('HMGET', key, 'priority', 'queue', 'task', 'run_at', 'seq')
  redis.call('ZREM', KEYS[2], id)
  redis.call('HSET', key, 'state', 'ready', 'updated_at', NOW)
  move(KEYS[4], 'scheduled', 'ready', f[1], f[2])
  make_ready(KEYS[1], id, f[1], f[2], f[3], f[4], f[5])
end

if limit <= 0 then return {} end
local routing = compile(cjson.decode(ARGV[7]))
local paused = paused_set(KEYS[5])
local by_prio = {{}, {}, {}}
for _, lane in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local prio, queue, task = parse_lane(lane)
  if not (paused and paused[queue]) and matches(routing, prio, queue, task) then
    table.insert(by_prio[prio + 1], lane)
  end
end

local out = {}
local function lease(lane, m)
  local id = string.sub(m, 17)
  local key = job_key(id)
  redis.call('ZREM', P .. 'ready:' .. lane, m)
  redis.call('HINCRBY', key, 'attempts', 1)
  redis.call('HSET', key, 'state', 'running', 'lease_token', ARGV[6] .. '.' .. (#out + 1),
    'lease_expires_at', expires, 'worker_id', ARGV[3], 'started_at', NOW, 'updated_at', NOW)
  redis.call('ZADD', KEYS[3], expires, id)
  local prio, queue = parse_lane(lane)
  move(KEYS[4], 'ready', 'running', prio, queue)
  out[#out + 1] = redis.call('HGETALL', key)
end

for p = 1, 3 do
  local lanes = by_prio[p]
  local need = limit - #out
  if need <= 0 then break end
  -- The best `need` jobs of this priority are among the first `need` of each lane.
  local cands = {}
  for _, lane in ipairs(lanes) do
    local top = redis.call('ZRANGE', P .. 'ready:' .. lane, 0, need - 1, 'WITHSCORES')
    for j = 1, #top, 2 do
      cands[#cands + 1] = {tonumber(top[j + 1]), top[j], lane}
    end
  end
  if #lanes > 1 then
    table.sort(cands, function(x, y)
      if x[1] ~= y[1] then return x[1] < y[1] end
      return x[2] < y[2]
    end)
  end
  for j = 1, math.min(need, #cands) do
    lease(cands[j][3], cands[j][2])
  end
  for _, lane in ipairs(lanes) do
    if redis.call('EXISTS', P .. 'ready:' .. lane) == 0 then
      redis.call('SREM', KEYS[1], lane)
    end
  end
end
return out
