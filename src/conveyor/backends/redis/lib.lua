-- lib.lua: helpers prepended to every other script when it is loaded (scripts.py).
--
-- Conventions every script follows:
--   ARGV[1]  P    the store's key prefix, e.g. "{conveyor}:" (one hash tag: one slot)
--   ARGV[2]  now  the backend clock as a decimal string; "" means ask Redis (TIME), so
--                 leases and due times follow the server's clock, never a worker's.
-- Keys derived from P inside a script share P's hash tag, so they live in the slot of
-- the KEYS the script declares (required on Redis Cluster).
--
-- Job hash  P.."job:"..id        fields: see codec.py (state, queue, priority, task, seq, ...)
-- Lane      P.."ready:"..lane    ZSET score=run_at member=%016x(seq)..id (FIFO on ties)
--           lane = priority digit .. #queue .. ":" .. queue .. task
-- Wake list P.."wake:"..waiter   LIST a parked worker BLPOPs on (park.lua)

local P = ARGV[1]

local function clock(arg)
  if arg == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  return tonumber(arg)
end

local NOW = clock(ARGV[2])

-- Floats leave scripts as strings: Lua's tostring keeps 14 digits, a reply would truncate.
local function num(x)
  return string.format('%.17g', x)
end

local function job_key(id)
  return P .. 'job:' .. id
end

local function lane_of(prio, queue, task)
  return prio .. #queue .. ':' .. queue .. task
end

local function parse_lane(lane)
  local colon = string.find(lane, ':', 2, true)
  local qlen = tonumber(string.sub(lane, 2, colon - 1))
  return tonumber(string.sub(lane, 1, 1)), string.sub(lane, colon + 1, colon + qlen),
    string.sub(lane, colon + qlen + 1)
end

local function member(seq, id)
  return string.format('%016x', tonumber(seq)) .. id
end

-- Per (state, priority, queue) totals for stats(); zero entries are dropped.
local function count(counts, state, prio, queue, delta)
  local field = state .. ':' .. prio .. ':' .. queue
  if redis.call('HINCRBY', counts, field, delta) <= 0 then
    redis.call('HDEL', counts, field)
  end
end

local function move(counts, old, new, prio, queue)
  count(counts, old, prio, queue, -1)
  count(counts, new, prio, queue, 1)
end

-- Put a job in its ready lane; returns the lane so callers can wake waiters for it.
local function make_ready(lanes, id, prio, queue, task, run_at, seq)
  local lane = lane_of(prio, queue, task)
  redis.call('ZADD', P .. 'ready:' .. lane, run_at, member(seq, id))
  redis.call('SADD', lanes, lane)
  return lane
end

local function drop_from_lane(lanes, lane, id, seq)
  local key = P .. 'ready:' .. lane
  redis.call('ZREM', key, member(seq, id))
  if redis.call('ZCARD', key) == 0 then
    redis.call('SREM', lanes, lane)
  end
end

local function release_unique(unique, key, id)
  if key and redis.call('HGET', unique, key) == id then
    redis.call('HDEL', unique, key)
  end
end

local function clear_lease(key)
  redis.call('HDEL', key, 'lease_token', 'lease_expires_at')
end

-- The paused queues as a lookup table, or nil when none is paused (the usual case: one
-- SMEMBERS of a missing key, so claim and park pay next to nothing for pausing).
local function paused_set(paused)
  local names = redis.call('SMEMBERS', paused)
  if #names == 0 then return nil end
  local set = {}
  for _, q in ipairs(names) do set[q] = true end
  return set
end

-- routing: {q = {lua patterns}, p = {priorities}, t = {tasks}}; a missing list matches all.
-- One UTF-8 character, and a class matching nothing; see keys.py ANY_CHAR / NO_CHAR.
local ANY = '[%z\1-\127\194-\244][\128-\191]*'
local NONE = '[^%z\1-\255]'

local function compile(spec)
  local r = {}
  if spec.q then
    r.q = {}
    for i, pattern in ipairs(spec.q) do
      pattern = string.gsub(pattern, '%%Q', function() return ANY end)
      r.q[i] = (string.gsub(pattern, '%%N', function() return NONE end))
    end
  end
  if spec.p then
    r.p = {}
    for _, p in ipairs(spec.p) do r.p[tonumber(p)] = true end
  end
  if spec.t then
    r.t = {}
    for _, t in ipairs(spec.t) do r.t[t] = true end
  end
  return r
end

local function matches(r, prio, queue, task)
  if r.p and not r.p[prio] then return false end
  if r.t and not r.t[task] then return false end
  if r.q then
    for _, pattern in ipairs(r.q) do
      if string.find(queue, pattern) then return true end
    end
    return false
  end
  return true
end

-- touched: lane -> {ready = n jobs made ready, due = earliest new scheduled run_at}.
-- Wakes at most one parked worker per ready job (no herd), and every parked worker that
-- would otherwise sleep past a newly scheduled job it serves. Lanes of queues in the
-- `paused` SET wake nobody: claim would not take their jobs (resume wakes them later).
local function wake(waiters, touched, paused)
  if next(touched) == nil or redis.call('HLEN', waiters) == 0 then return end
  local any_paused = redis.call('EXISTS', paused) == 1
  local budget = 0
  local lanes = {}
  for lane, t in pairs(touched) do
    local prio, queue, task = parse_lane(lane)
    if not (any_paused and redis.call('SISMEMBER', paused, queue) == 1) then
      budget = budget + t.ready
      lanes[#lanes + 1] = {prio, queue, task, t.ready, t.due}
    end
  end
  if #lanes == 0 then return end
  local flat = redis.call('HGETALL', waiters)
  for i = 1, #flat, 2 do
    local spec = cjson.decode(flat[i + 1])
    local hit = false
    if spec.d < NOW then
      redis.call('HDEL', waiters, flat[i])  -- its wait is over: it will park again if idle
    else
      local r = compile(spec)
      for _, l in ipairs(lanes) do
        if matches(r, l[1], l[2], l[3]) then
          if budget > 0 and l[4] > 0 then
            budget = budget - 1
            hit = true
            break
          elseif l[5] and l[5] < spec.d then
            hit = true
            break
          end
        end
      end
    end
    if hit then
      local key = P .. 'wake:' .. flat[i]
      redis.call('LPUSH', key, '1')
      redis.call('EXPIRE', key, 300)
      redis.call('HDEL', waiters, flat[i])
    end
  end
end

local function touch(touched, lane, ready, due)
  local t = touched[lane]
  if not t then
    t = {ready = 0}
    touched[lane] = t
  end
  t.ready = t.ready + ready
  if due and (not t.due or due < t.due) then t.due = due end
end

