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
-- Lane      P.."fifo:"..lane     LIST of ids: jobs enqueued to run now, in enqueue order
--                                (their run_at and seq both grow along the list)
--           P.."ready:"..lane    ZSET score=run_at member=%016x(seq)..id (FIFO on ties):
--                                every other ready job (due, released, recovered, retried)
--           lane = priority digit .. #queue .. ":" .. queue .. task; claim.lua takes a
--           lane's jobs from both parts in (run_at, seq) order
-- Wake list P.."wake:"..waiter   LIST a parked worker BLPOPs on (park.lua)
--
-- Damage (a record or index entry another program wrote badly) costs one entry, never a
-- script: stored values are read with `number` (nil for anything but a finite number),
-- job hashes with redis.pcall (a key of another type is an error reply, not an abort),
-- and what a script repairs or skips is reported with `note`.

local P = ARGV[1]

-- Repairs and skips made by this call: logged in the server's log, and returned by the
-- scripts whose callers log them too (claim.lua), so damage is never silent.
local NOTES = {}
local function note(msg)
  NOTES[#NOTES + 1] = msg
  redis.log(redis.LOG_WARNING, 'conveyor ' .. P .. ' ' .. msg)
end

-- Whether a redis.pcall reply is an error (e.g. WRONGTYPE for a key of another type).
local function failed(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

-- A stored number, or nil when it is not one: Lua's tonumber accepts "nan" and "inf",
-- which no score or time may be.
local function number(x)
  local n = tonumber(x)
  if n and n == n and n ~= math.huge and n ~= -math.huge then return n end
  return nil
end

local PRIORITY = {['0'] = 0, ['1'] = 1, ['2'] = 2}
local STATES = {scheduled = true, ready = true, running = true, succeeded = true,
  dead = true, cancelled = true}

-- Whether a job's priority and queue (and task, when given) can name a lane and a count:
-- a record without them cannot be put anywhere, only left where it is.
local function usable(prio, queue, task)
  return PRIORITY[tostring(prio)] ~= nil and type(queue) == 'string'
    and (task == nil or type(task) == 'string')
end

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

-- A lane's priority (a number), queue and task; nil for a member that is not a lane
-- (damage): only a name lane_of gives back exactly is one.
local function parse_lane(lane)
  local prio = PRIORITY[string.sub(lane, 1, 1)]
  local colon = string.find(lane, ':', 2, true)
  if not prio or not colon then return nil end
  local qlen = tonumber(string.sub(lane, 2, colon - 1))
  if not qlen or qlen < 0 or qlen % 1 ~= 0 or colon + qlen > #lane then return nil end
  local queue = string.sub(lane, colon + 1, colon + qlen)
  local task = string.sub(lane, colon + qlen + 1)
  if lane_of(prio, queue, task) ~= lane then return nil end
  return prio, queue, task
end

-- A damaged seq sorts first among its run_at ties rather than stopping the script.
local function member(seq, id)
  return string.format('%016x', number(seq) or 0) .. id
end

-- Per (state, priority, queue) totals for stats(); zero entries are dropped. A job whose
-- priority or queue is damaged is not counted (its caller notes why); a total that is not
-- an integer (damage) starts again from this change.
local function count(counts, state, prio, queue, delta)
  if not usable(prio, queue) then return end
  local field = state .. ':' .. prio .. ':' .. queue
  local n = redis.pcall('HINCRBY', counts, field, delta)
  if failed(n) then
    note('counts field ' .. field .. ' held a non-integer total; reset from this change')
    n = delta
    if n > 0 then redis.call('HSET', counts, field, n) end
  end
  if n <= 0 then
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
  local key = P .. 'ready:' .. lane
  local score, m = number(run_at) or NOW, member(seq, id)
  if failed(redis.pcall('ZADD', key, score, m)) then
    -- A lane key of another type (damage) holds no ready entry: it is started again.
    note('ready lane ' .. lane .. ' was not a ZSET: reset')
    redis.call('DEL', key)
    redis.call('ZADD', key, score, m)
  end
  redis.call('SADD', lanes, lane)
  return lane
end

-- section index: enqueue.lua includes it too (scripts.py); it uses only P and Redis.
-- The newest-first index of jobs: buckets of 128 consecutive seqs, each a ZSET seq -> id
-- small enough to stay a listpack (zset-max-listpack-entries is 128 unless changed), so
-- an entry costs about a third of one in a single large ZSET. A job waiting in a lane's
-- LIST part (fifo:) is listed from there, in seq order too, and joins the index when it
-- leaves the LIST (claim.lua, cancel.lua): a queued job costs one LIST entry, and every
-- job is in exactly one of the two (query.lua merges them). The buckets in use are the
-- members of P.."buckets" (score = member = bucket number): whatever writes to a bucket
-- registers it, query.lua forgets an empty one. P.."all" is the single ZSET of a store
-- made before the buckets: query.lua moves it into them, and the scripts that delete
-- jobs remove an id from it too.
local function bucket_of(seq)
  return math.floor((seq - 1) / 128)
end

local function is_error(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

-- A key of another type than `kind` (damage: it holds no entry of ours) is deleted and
-- true returned; false for a key of that type or none, where the failure was something
-- else (out of memory, say), which must fail the call.
local function reset_damaged(key, kind, what)
  local found = redis.call('TYPE', key).ok
  if found == kind or found == 'none' then return false end
  redis.log(redis.LOG_WARNING, 'conveyor ' .. P .. ' ' .. what .. ' was a ' .. found
    .. ', not a ' .. string.upper(kind) .. ': reset')
  redis.call('DEL', key)
  return true
end

-- Register the buckets in `list` (bucket, bucket, ...). A registry of another type is
-- made again from the buckets that exist (one EXISTS per bucket number the store's seq
-- has reached: a one-off repair).
local function register(list)
  local registry = P .. 'buckets'
  if #list > 0 and not is_error(redis.pcall('ZADD', registry, unpack(list))) then return end
  if not reset_damaged(registry, 'zset', 'the index bucket registry') then
    if #list > 0 then redis.call('ZADD', registry, unpack(list)) end  -- the same failure
    return
  end
  local seq = tonumber(redis.call('GET', P .. 'seq')) or 1
  for b = 0, bucket_of(seq) do
    if redis.call('EXISTS', P .. 'all:' .. b) == 1 then redis.call('ZADD', registry, b, b) end
  end
  if #list > 0 then redis.call('ZADD', registry, unpack(list)) end
end

-- Variadic writes of `items` to `key` by `add` (zadd_part or rpush_part), at most 1,000
-- arguments each (Lua's unpack has a stack limit). The usual key gets one write, its
-- type checked only when that fails: a key of another type (damage) holds no entry of
-- ours, so it is started again. Any other failure (out of memory, say) is returned, for
-- the caller to fail the call with: a key is never reset for it, since that would delete
-- the entries it holds.
local function zadd_part(key, items, a, b)
  return redis.pcall('ZADD', key, unpack(items, a, b))
end
local function rpush_part(key, items, a, b)
  return redis.pcall('RPUSH', key, unpack(items, a, b))
end
local function write(add, key, what, kind, items)
  for i = 1, #items, 1000 do
    local last = math.min(i + 999, #items)
    local done = add(key, items, i, last)
    if is_error(done) then
      if i > 1 or not reset_damaged(key, kind, what) then return done end
      done = add(key, items, i, last)
      if is_error(done) then return done end
    end
  end
end

-- Gather an index entry for a later index_many: by_bucket is bucket -> {seq, id, ...}.
local function gather(by_bucket, seq, id)
  local b = bucket_of(tonumber(seq))
  local entries = by_bucket[b]
  if not entries then
    entries = {}
    by_bucket[b] = entries
  end
  entries[#entries + 1] = seq
  entries[#entries + 1] = id
end

-- Add {seq, id, ...} to bucket b and register it: a bucket key of another type (damage:
-- its entries are lost, their jobs kept) is started again.
local function index_many(b, entries)
  local err = write(zadd_part, P .. 'all:' .. b, 'index bucket ' .. b, 'zset', entries)
  if err then error(err) end  -- raised as redis.call raises it
  register({b, b})
end
-- end index

-- Take a deleted job out of the index, and out of `legacy` (the single index of a store
-- made before the buckets); a damaged seq leaves its bucket entry, which query.lua skips
-- (it reads no record) until its bucket empties.
local function unindex(legacy, id, seq)
  seq = number(seq)
  if seq then redis.call('ZREM', P .. 'all:' .. bucket_of(seq), id) end
  redis.call('ZREM', legacy, id)
end

-- Take a ready job out of its lane: from the ZSET part, else from the LIST part (LREM
-- walks the list: cancelling a ready job costs the lane's length), where the job was
-- not in the job index yet: it joins it (lib.lua's buckets, index_many).
local function drop_from_lane(lanes, lane, id, seq)
  local key, fifo = P .. 'ready:' .. lane, P .. 'fifo:' .. lane
  if redis.call('ZREM', key, member(seq, id)) == 0 and redis.pcall('LREM', fifo, 1, id) == 1 then
    local n = number(seq)
    if n then index_many(bucket_of(n), {seq, id}) end
  end
  if redis.call('EXISTS', key, fifo) == 0 then
    redis.call('SREM', lanes, lane)
  end
end

local function release_unique(unique, key, id)
  if key and redis.call('HGET', unique, key) == id then
    redis.call('HDEL', unique, key)
  end
end

-- Add n to one of the store's counters (fenced, recovered, poisoned); one that is not an
-- integer (damage) starts again from n rather than failing a batch of acknowledgements.
local function tally(counters, name, n)
  if failed(redis.pcall('HINCRBY', counters, name, n)) then
    note('counter ' .. name .. ' held a non-integer; reset')
    redis.call('HSET', counters, name, n)
  end
end

-- Give back the attempt a claim counted; a damaged count is left for the next claim to
-- report (claim.lua), not allowed to stop this script.
local function give_back_attempt(key)
  redis.pcall('HINCRBY', key, 'attempts', -1)
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

-- section routing: enqueue.lua includes it too (scripts.py), so it is written once.
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
-- end routing

-- `matches` for routing read from the store: a malformed pattern (damage) matches nothing.
local function matches_safely(r, prio, queue, task)
  local ok, hit = pcall(matches, r, prio, queue, task)
  return ok and hit
end

-- A parked worker's entry as {spec, compiled routing}, or nil when it is unreadable.
local function waiter_spec(raw)
  local ok, spec = pcall(cjson.decode, raw)
  if not ok or type(spec) ~= 'table' or type(spec.d) ~= 'number' then return nil end
  local compiled, r = pcall(compile, spec)
  if not compiled then return nil end
  return spec, r
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
    if prio and not (any_paused and redis.call('SISMEMBER', paused, queue) == 1) then
      budget = budget + t.ready
      lanes[#lanes + 1] = {prio, queue, task, t.ready, t.due}
    end
  end
  if #lanes == 0 then return end
  local flat = redis.call('HGETALL', waiters)
  for i = 1, #flat, 2 do
    local spec, r = waiter_spec(flat[i + 1])
    local hit = false
    if not spec then
      -- Damage: dropped like an expired wait (a live worker parks again with a new entry).
      note('waiter ' .. flat[i] .. ' had an unreadable entry; dropped')
      redis.call('HDEL', waiters, flat[i])
    elseif spec.d < NOW then
      redis.call('HDEL', waiters, flat[i])  -- its wait is over: it will park again if idle
    else
      for _, l in ipairs(lanes) do
        if matches_safely(r, l[1], l[2], l[3]) then
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

