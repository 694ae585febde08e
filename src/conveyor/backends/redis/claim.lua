-- claim.lua: promote due scheduled jobs, then lease up to `limit` ready jobs the routing
-- matches: strict priority (high, normal, low) across every matching lane, then oldest
-- run_at, then enqueue order. Routing happens here, so a worker never sees other work.
-- Lanes of paused queues are skipped (their due scheduled jobs are still promoted).
--
-- Damage costs one entry: a lane member that is not a lane, an id whose job key is
-- missing or not a hash, or a record without a usable priority and queue is dropped from
-- the index (a job key is kept as it is) and noted; an entry for a job in another state
-- is dropped as stale; a lane key of the wrong type (so it holds no entry) is deleted. A
-- record whose `state` or `attempts` is damaged is leased all the same and reported, so
-- the caller quarantines it (quarantine.lua) with the rest of the batch unharmed. A job
-- taken from a lane's LIST part joins the job index (lib.lua's index section).
--
-- KEYS[1] lanes      SET of non-empty ready lanes
-- KEYS[2] scheduled  ZSET run_at -> id
-- KEYS[3] leases     ZSET lease expiry (whole seconds, rounded up) -> id of each running job
-- KEYS[4] counts     HASH "state:priority:queue" -> jobs
-- KEYS[5] paused     SET paused queue names
-- derived: job hashes, ready lanes
-- ARGV[1] P, ARGV[2] now, ARGV[3] worker id, ARGV[4] limit, ARGV[5] lease seconds,
-- ARGV[6] token base (random; job i gets base .. "." .. i), ARGV[7] routing JSON,
-- ARGV[8] most scheduled jobs to promote in this call
-- Returns: {notes (damage repaired or skipped, as text)}, {now, lease expiry} (as
--   written to every job this call leased), then per leased job, in run order: id,
--   problem ("" for none, else the damaged field, "state=<old value>" for a state that
--   was not "ready"), the job's HGETALL array as it was before this call's writes. Job i
--   (from 1, in reply order) got lease token ARGV[6] .. "." .. i; the caller applies the
--   writes to its copy (state running, attempts + 1, the lease, worker id, started_at and
--   updated_at), which costs far less in Python than patching each record in Lua.

local limit = tonumber(ARGV[4])
local expires = NOW + tonumber(ARGV[5])

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[8]))
for _, id in ipairs(due) do
  local key = job_key(id)
  redis.call('ZREM', KEYS[2], id)
  local f = redis.pcall('HMGET', key, 'state', 'priority', 'queue', 'task', 'run_at', 'seq',
    'created_at')
  if failed(f) then
    note('scheduled job ' .. id .. ': its key is not a hash (kept); dropped from the schedule')
  elseif STATES[f[1]] and f[1] ~= 'scheduled' then
    note('scheduled job ' .. id .. ' is ' .. f[1] .. ': stale entry dropped from the schedule')
  elseif not usable(f[2], f[3], f[4]) then
    if redis.call('EXISTS', key) == 0 then
      note('scheduled job ' .. id .. ' has no record: dropped from the schedule')
    else
      note('scheduled job ' .. id .. ' has no usable priority, queue or task (record kept): '
        .. 'dropped from the schedule')
    end
    count(KEYS[4], 'scheduled', f[2], f[3], -1)
  else
    -- A damaged state is left for the claim below to report.
    if f[1] == 'scheduled' then redis.call('HSET', key, 'state', 'ready') end
    redis.call('HSET', key, 'updated_at', NOW)
    move(KEYS[4], 'scheduled', 'ready', f[2], f[3])
    make_ready(KEYS[1], id, f[2], f[3], f[4], f[5] or f[7], f[6])
  end
end

if limit <= 0 then return {NOTES, {}} end
local routing = compile(cjson.decode(ARGV[7]))
local paused = paused_set(KEYS[5])
local by_prio = {{}, {}, {}}
for _, lane in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local prio, queue, task = parse_lane(lane)
  if not prio then
    note('lanes held ' .. lane .. ', which is not a lane: removed')
    redis.call('SREM', KEYS[1], lane)
  elseif not (paused and paused[queue]) and matches(routing, prio, queue, task) then
    table.insert(by_prio[prio + 1], {lane, prio, queue})
  end
end

local out = {{}, {}}
local leased = 0
-- Count changes of this call, applied once per (state, priority, queue) at the end.
local deltas = {}
local function count_later(state, prio, queue, delta)
  local k = state .. ':' .. tostring(prio) .. ':' .. tostring(queue)
  local d = deltas[k]
  if not d then
    d = {state, prio, queue, 0}
    deltas[k] = d
  end
  d[4] = d[4] + delta
end
-- Written to every leased job: strings, so the reply below repeats the stored text.
local EXPIRES, NOWS = num(expires), num(NOW)
-- A job's score in the lease index: its expiry rounded up to a whole second. A small ZSET
-- keeps an integer score as an integer and any other as text it parses on every comparison
-- (a ZADD of a batch into the index cost about 4 µs per job that way); recovery may find
-- an expired lease up to a second later, the record keeps the exact expiry.
local LEASE_SCORE = math.ceil(expires)

-- Lease one ready entry; false when it was dropped as damaged or stale. The record is
-- read first (one HGETALL, which also tells a missing key or one of another type) and
-- returned as read: the caller applies this call's writes to it (see Returns).
-- Lane entries taken are removed before any lane is read again (`drop_taken`): per ZSET
-- part, its members in one ZREM; per LIST part, the entries taken from its head in one
-- LTRIM. Leases are added in one ZADD at the end.
local taken = {}
local popped = {}
local leases = {}
local function drop_taken()
  for key, members in pairs(taken) do
    for j = 1, #members, 1000 do
      redis.call('ZREM', key, unpack(members, j, math.min(j + 999, #members)))
    end
  end
  for key, n in pairs(popped) do
    redis.call('LTRIM', key, n, -1)
  end
  taken, popped = {}, {}
end

-- Jobs taken from a LIST part join the job index here (lib.lua's buckets): bucket ->
-- {seq, id, ...}, written once per bucket at the end.
local indexed = {}
-- A record whose seq cannot be read (damage) is indexed under the store's latest seq, so
-- listings still show it (among the newest jobs).
local function index_damaged(id)
  gather(indexed, number(redis.call('GET', P .. 'seq')) or 1, id)
end

local function lease(l, id, listed)
  local lane, prio, queue = l[1], l[2], l[3]
  local key = job_key(id)
  local h = redis.pcall('HGETALL', key)
  if failed(h) then
    note('ready job ' .. id .. ': its key is not a hash (kept); dropped from lane ' .. lane)
    count_later('ready', prio, queue, -1)
    if listed then index_damaged(id) end
    return false
  end
  local state, hprio, hqueue, attempts, seq
  for i = 1, #h, 2 do
    local name = h[i]
    if name == 'state' then
      state = h[i + 1]
    elseif name == 'priority' then
      hprio = h[i + 1]
    elseif name == 'queue' then
      hqueue = h[i + 1]
    elseif name == 'attempts' then
      attempts = h[i + 1]
    elseif name == 'seq' then
      seq = h[i + 1]
    end
  end
  -- Whatever happens to it next, a record leaves the LIST for the index, so listings
  -- show it (a missing record, the ghost of an id, is only noted below).
  if listed and #h > 0 then
    if number(seq) then gather(indexed, number(seq), id) else index_damaged(id) end
  end
  if STATES[state] and state ~= 'ready' then
    note('ready job ' .. id .. ' is ' .. state .. ': stale entry dropped from lane ' .. lane)
    return false
  end
  if not usable(hprio, hqueue) then
    if #h == 0 then
      note('ready job ' .. id .. ' has no record: dropped from lane ' .. lane)
    else
      note('ready job ' .. id .. ' has no usable priority or queue (record kept): dropped '
        .. 'from lane ' .. lane)
    end
    count_later('ready', prio, queue, -1)
    return false
  end
  local problem = ''
  if state ~= 'ready' then
    problem = 'state'
    if state then problem = 'state=' .. state end
  end
  -- The count HINCRBY would keep: a missing field is 0; anything but a plain integer Redis
  -- could count with (up to 15 digits here) is damage, left as it is and reported.
  if attempts == nil then
    attempts = '1'
  elseif string.find(attempts, '^%-?%d+$') and #attempts < 16 then
    attempts = tostring(tonumber(attempts) + 1)
  else
    attempts = nil
    if problem == '' then problem = 'attempts' end
  end
  leased = leased + 1
  local token = ARGV[6] .. '.' .. leased
  if attempts then
    redis.call('HSET', key, 'state', 'running', 'attempts', attempts, 'lease_token', token,
      'lease_expires_at', EXPIRES, 'worker_id', ARGV[3], 'started_at', NOWS,
      'updated_at', NOWS)
  else
    redis.call('HSET', key, 'state', 'running', 'lease_token', token, 'lease_expires_at',
      EXPIRES, 'worker_id', ARGV[3], 'started_at', NOWS, 'updated_at', NOWS)
  end
  leases[#leases + 1] = LEASE_SCORE
  leases[#leases + 1] = id
  -- Counted from here on under the priority and queue its record names (the lane's,
  -- unless one of them was rewritten), as every later script counts it.
  count_later('ready', prio, queue, -1)
  count_later('running', hprio, hqueue, 1)
  out[#out + 1] = id
  out[#out + 1] = problem
  out[#out + 1] = h
  return true
end

-- A source is one part of a lane: {lane, key, entries, next, list}, where a LIST part's
-- entries are ids and a ZSET part's are member, score pairs. `take` removes its next
-- entry (later, in drop_taken) and leases that job.
local function take(src)
  local id
  if src[5] then
    id = src[3][src[4]]
    src[4] = src[4] + 1
    popped[src[2]] = (popped[src[2]] or 0) + 1
  else
    local m = src[3][src[4]]
    src[4] = src[4] + 2
    id = string.sub(m, 17)
    local t = taken[src[2]]
    if not t then
      t = {}
      taken[src[2]] = t
    end
    t[#t + 1] = m
  end
  return lease(src[1], id, src[5])
end

-- The order of a source's next entry: run_at, then seq as 16 hex digits (a ZSET member's
-- first 16 characters). A LIST entry's are read from its record; a record that cannot
-- give them (damage) sorts first, and lease() drops it.
local function head(src)
  local i, entries = src[4], src[3]
  if not src[5] then return {tonumber(entries[i + 1]), string.sub(entries[i], 1, 16)} end
  local f = redis.pcall('HMGET', job_key(entries[i]), 'run_at', 'seq', 'created_at')
  if failed(f) then return {-math.huge, ''} end
  return {number(f[1] or f[3]) or -math.huge, string.format('%016x', number(f[2]) or 0)}
end

local function before(x, y)
  return x[1] < y[1] or (x[1] == y[1] and x[2] < y[2])
end

-- A lane's two parts: its ZSET (read with scores) and its LIST of jobs to run now.
local PARTS = {{'ready:', false}, {'fifo:', true}}

for p = 1, 3 do
  local lanes = by_prio[p]
  -- Entries dropped as damage do not use up the limit: take more candidates.
  while #lanes > 0 and leased < limit do
    local need = limit - leased
    -- The best `need` jobs of this priority are among the first `need` of each part.
    local sources = {}
    for _, l in ipairs(lanes) do
      for _, part in ipairs(PARTS) do
        local key = P .. part[1] .. l[1]
        local got
        if part[2] then
          got = redis.pcall('LRANGE', key, 0, need - 1)
        else
          got = redis.pcall('ZRANGE', key, 0, need - 1, 'WITHSCORES')
        end
        if failed(got) then
          note('ready lane ' .. l[1] .. ': its ' .. part[1] .. ' key held another type; '
            .. 'deleted')
          redis.call('DEL', key)
        elseif #got > 0 then
          sources[#sources + 1] = {l, key, got, 1, part[2]}
        end
      end
    end
    if #sources == 0 then break end
    local dropped, n = false, 0
    if #sources == 1 then
      -- One part holds this priority's work (the usual case): its order is the order.
      local src = sources[1]
      while n < need and src[4] <= #src[3] do
        n = n + 1
        if not take(src) then dropped = true end
      end
    else
      -- Merge the parts by (run_at, seq), reading each part's next entry only when the
      -- one before it is taken.
      local heads = {}
      for i, src in ipairs(sources) do heads[i] = head(src) end
      while n < need do
        local best
        for i, src in ipairs(sources) do
          if src[4] <= #src[3] and (not best or before(heads[i], heads[best])) then best = i end
        end
        if not best then break end
        n = n + 1
        local src = sources[best]
        if not take(src) then dropped = true end
        if src[4] <= #src[3] then heads[best] = head(src) end
      end
    end
    drop_taken()
    if not dropped then break end
  end
  for _, l in ipairs(lanes) do
    if redis.call('EXISTS', P .. 'ready:' .. l[1], P .. 'fifo:' .. l[1]) == 0 then
      redis.call('SREM', KEYS[1], l[1])
    end
  end
end
for j = 1, #leases, 1000 do
  redis.call('ZADD', KEYS[3], unpack(leases, j, math.min(j + 999, #leases)))
end
for b, entries in pairs(indexed) do
  index_many(b, entries)
end
for _, d in pairs(deltas) do
  if d[4] ~= 0 then count(KEYS[4], d[1], d[2], d[3], d[4]) end
end
out[1] = NOTES
out[2] = {NOWS, EXPIRES}
return out
