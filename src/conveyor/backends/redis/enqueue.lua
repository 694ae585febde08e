-- enqueue.lua: store a batch of new jobs, in order, and wake parked workers.
-- standalone: loaded without lib.lua (scripts.py), so a call defines only what it uses;
-- the routing matcher is lib.lua's own, put in where this file says "include"; the
-- wake-up code below follows lib.lua's `wake`, and the field layout is lib.lua's.
--
-- KEYS[1] buckets    ZSET bucket -> bucket: the buckets of the newest-first job index
--                    (lib.lua's index section), each P.."all:"..bucket a ZSET seq -> id;
--                    a job to run now joins it when it leaves its lane's LIST, not here
-- KEYS[2] seq        STRING, the store's enqueue counter
-- KEYS[3] lanes      SET of non-empty ready lanes
-- KEYS[4] scheduled  ZSET run_at -> id, jobs waiting for their time
-- KEYS[5] unique     HASH unique key -> id of the active job holding it
-- KEYS[6] counts     HASH "state:priority:queue" -> jobs
-- KEYS[7] waiters    HASH parked worker -> routing and deadline (park.lua)
-- KEYS[8] paused     SET paused queue names (read only when a worker is parked)
-- derived: job hashes, index buckets, ready lanes (a job to run now is appended to its
--   lane's LIST part, any other ready job added to its ZSET part: lib.lua), wake lists
-- ARGV[1] P, ARGV[2] now, ARGV[3] n jobs, then the jobs as runs of jobs that share their
--   options, each run: m (its jobs), task, queue, priority, headers (JSON), max_retries
--   and timeout ("" for either at its built-in default: left out of the record), run_at
--   ("" = now, "+" .. seconds = that long after NOW, else a Unix time), flags ("u" in
--   them when its jobs carry unique keys: keyed; "a" when its payloads are bare argument
--   arrays, kept in an `args` field in place of `payload`: codec.bare_args), then per
--   job: id, payload, and when keyed its unique key ("" = none, else "u" .. key). A
--   batch of one task's calls is one run, so each job costs two arguments. ARGV may go
--   on after the n jobs (tick.lua's own arguments): they are not read here.
-- Returns: per job, "" when it was stored under its own id, else the id of the job that
--   already existed (same unique key or same id).
--
-- The lean record: a job hash holds what a claim needs and leaves out the fields at their
-- first or default value, which readers take as that value (codec.DEFAULTS): its id (the
-- key's), attempts and recoveries (0), headers ({}, written only when there are some),
-- max_retries (3) and timeout (300) when the job has the built-in defaults, updated_at
-- (created_at) and, for a job to run now, run_at (created_at); the scripts that change a
-- job write the fields that change.
--
-- Per job only HSET runs one by one (of a table the run fills once); the index writes
-- (buckets, lanes, counts, scheduled) are gathered and sent as a few variadic commands at
-- the end, and what a run's jobs share (run time, state, lane, counts field, the record's
-- fields) is worked out once per run. A batch of one job to run now without a unique key
-- (a plain `enqueue()`) takes a short path first, which stores it with the same commands
-- and leaves the gathering out (a third of a single call's script time).
-- Damage does not stop an enqueue: a counts total that is not an integer starts again
-- from this batch, an unreadable waiter entry is dropped, a ready lane key of another
-- type is reset, and a unique key held by a job that is not active (or has no record) is
-- taken over (each logged in the server log, as lib.lua's `note` does).

local P = ARGV[1]

-- NOW as a number for comparisons, NOWS as the string stored (formatting a Lua number
-- for every field costs more than the rest of a small enqueue).
local NOW, NOWS
if ARGV[2] == '' then
  local t = redis.call('TIME')
  NOWS = t[1] .. '.' .. string.sub('00000' .. t[2], -6)
else
  NOWS = ARGV[2]
end
NOW = tonumber(NOWS)

-- Added to a counts field: a total that is not an integer (damage) starts again from
-- this change, and a total that reaches 0 is removed.
local function add_count(field, delta)
  local total = redis.pcall('HINCRBY', KEYS[6], field, delta)
  if type(total) == 'table' then
    redis.log(redis.LOG_WARNING, 'conveyor ' .. P .. ' counts field ' .. field
      .. ' held a non-integer total; reset from this change')
    total = delta
    redis.call('HSET', KEYS[6], field, total)
  end
  if total <= 0 then
    redis.call('HDEL', KEYS[6], field)
  end
end

-- The record fields a run's jobs share: each job's HSET adds its payload (in `args` when
-- `bare`) and seq, and its unique key if it has one. `run_ats` is nil for a job to run
-- now (its run_at is its created_at); `retries` and `timeout` are "" at the defaults.
local function shared_fields(task, queue, prio, state, retries, timeout, run_ats, headers)
  local rec = {'task', task, 'queue', queue, 'priority', prio, 'state', state,
    'created_at', NOWS}
  if retries ~= '' then rec[#rec + 1] = 'max_retries'; rec[#rec + 1] = retries end
  if timeout ~= '' then rec[#rec + 1] = 'timeout'; rec[#rec + 1] = timeout end
  if run_ats then rec[#rec + 1] = 'run_at'; rec[#rec + 1] = run_ats end
  if headers ~= '{}' then rec[#rec + 1] = 'headers'; rec[#rec + 1] = headers end
  return rec
end

local out, touched

-- One job to run now without a unique key (a plain `enqueue()`, the usual call) is stored
-- here, with the commands the batch path below would send for it and none of its
-- bookkeeping: about a third less script time per call. A lane key of another
-- type (damage) leaves it to the batch path, which resets the key; nothing is written
-- before that is known.
if ARGV[3] == '1' and ARGV[11] == '' and not string.find(ARGV[12], 'u', 1, true) then
  local id = ARGV[13]
  local key = P .. 'job:' .. id
  if redis.call('EXISTS', key) == 1 then return {id} end
  local task, queue, prio = ARGV[5], ARGV[6], ARGV[7]
  local lane = prio .. #queue .. ':' .. queue .. task
  if type(redis.pcall('RPUSH', P .. 'fifo:' .. lane, id)) == 'number' then
    local rec = shared_fields(task, queue, prio, 'ready', ARGV[9], ARGV[10], nil, ARGV[8])
    rec[#rec + 1] = string.find(ARGV[12], 'a', 1, true) and 'args' or 'payload'
    rec[#rec + 1] = ARGV[14]
    rec[#rec + 1] = 'seq'
    rec[#rec + 1] = redis.call('INCRBY', KEYS[2], 1)
    redis.call('HSET', key, unpack(rec))
    redis.call('SADD', KEYS[3], lane)
    add_count('ready:' .. prio .. ':' .. queue, 1)
    out, touched = {''}, {[lane] = {ready = 1}}
  end
end

if not out then
  -- include index (lib.lua's job index: bucket_of, is_error, reset_damaged, write, gather,
  -- index_many)

  local n = tonumber(ARGV[3])
  out = {}
  local all = {}        -- bucket -> {seq, id, seq, id, ...} (lib.lua's index section)
  local sched = {}      -- run_at, id, ... for KEYS[4]
  local lanes = {}      -- lane -> {run_at, member, ...} for the lane's ZSET part
  local fifos = {}      -- lane -> {id, ...} for the lane's LIST part (jobs to run now)
  local counts = {}     -- "state:prio:queue" -> added jobs
  touched = {}          -- lane -> {ready = n, due = earliest scheduled run_at}
  local seq = redis.call('INCRBY', KEYS[2], n) - n

  -- A retried enqueue (after a timeout, say) must not store a job twice. One variadic
  -- EXISTS answers for the whole batch in the usual case, where none of its ids is stored
  -- (then only an id given twice in the batch is caught, by `seen`); a batch holding a
  -- stored id checks its jobs one by one.
  local jobkeys = {}
  do
    local b, left = 4, n
    while left > 0 do
      local m = tonumber(ARGV[b])
      local width = 2
      if string.find(ARGV[b + 8], 'u', 1, true) then width = 3 end
      b = b + 9
      for _ = 1, m do
        jobkeys[#jobkeys + 1] = P .. 'job:' .. ARGV[b]
        b = b + width
      end
      left = left - m
    end
  end
  local one_by_one = false
  for i = 1, #jobkeys, 1000 do
    if redis.call('EXISTS', unpack(jobkeys, i, math.min(i + 999, #jobkeys))) > 0 then
      one_by_one = true
      break
    end
  end
  local seen = {}

  local a = 4           -- the next argument to read
  local k = 0           -- the job's index in jobkeys
  local left = n
  while left > 0 do
    local m, task, queue, prio = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
    local headers, retries, timeout, due = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
    local keyed = string.find(ARGV[a + 8], 'u', 1, true) ~= nil
    local bare = string.find(ARGV[a + 8], 'a', 1, true) ~= nil
    a = a + 9
    left = left - m
    local run_at, run_ats = NOW, NOWS
    if string.byte(due) == 43 then  -- '+': a delay (enqueue(delay=)) on the server's clock
      run_at = NOW + tonumber(string.sub(due, 2))
      run_ats = string.format('%.17g', run_at)
    elseif due ~= '' then
      run_ats = due
      run_at = tonumber(run_ats)
    end
    local state = 'ready'
    if run_at > NOW then state = 'scheduled' end
    local lane = prio .. #queue .. ':' .. queue .. task
    -- A job to run now joins the end of its lane's LIST (its run_at and seq are the
    -- newest there); a ready job with an earlier run_at goes to the lane's ZSET.
    local l, now_run = nil, state == 'ready' and run_ats == NOWS
    if state == 'ready' then
      local parts = now_run and fifos or lanes
      l = parts[lane]
      if not l then
        l = {}
        parts[lane] = l
      end
    end
    -- The run's record fields, then per job its payload and seq (and its unique key):
    -- each job is one HSET of this table, its last values set in place.
    local rec = shared_fields(task, queue, prio, state, retries, timeout,
      not now_run and run_ats or nil, headers)
    local fixed = #rec
    rec[fixed + 1], rec[fixed + 3], rec[fixed + 5] = 'payload', 'seq', 'unique_key'
    if bare then rec[fixed + 1] = 'args' end
    local stored = 0
    for _ = 1, m do
      local id, payload = ARGV[a], ARGV[a + 1]
      local ukey = nil
      if keyed then
        if ARGV[a + 2] ~= '' then ukey = string.sub(ARGV[a + 2], 2) end
        a = a + 3
      else
        a = a + 2
      end
      local holder = ukey and redis.call('HGET', KEYS[5], ukey)
      if holder then
        -- Every script that ends a job frees its key, so a holder that is not active is an
        -- entry left by damage (its record gone or rewritten): it must not block the key.
        local st = redis.pcall('HGET', P .. 'job:' .. holder, 'state')
        if st ~= 'scheduled' and st ~= 'ready' and st ~= 'running' then
          redis.log(redis.LOG_WARNING, 'conveyor ' .. P .. ' unique key ' .. ukey
            .. ' was held by job ' .. holder .. ', which is not active: taken over')
          holder = nil
        end
      end
      k = k + 1
      local key = jobkeys[k]
      local exists = seen[key]
      if one_by_one and not exists then exists = redis.call('EXISTS', key) == 1 end
      if holder then
        out[#out + 1] = holder
      elseif exists then
        out[#out + 1] = id
      else
        seen[key] = true
        seq = seq + 1
        local seqs = tostring(seq)
        rec[fixed + 2], rec[fixed + 4] = payload, seqs
        if ukey then
          rec[fixed + 6] = ukey
          redis.call('HSET', key, unpack(rec, 1, fixed + 6))
          redis.call('HSET', KEYS[5], ukey, id)
        else
          redis.call('HSET', key, unpack(rec, 1, fixed + 4))
        end
        if now_run then
          -- The job is listed from its lane's LIST until it leaves it, so it has no index
          -- entry yet (lib.lua).
          l[#l + 1] = id
        else
          gather(all, seqs, id)
          if l then
            l[#l + 1] = run_ats
            l[#l + 1] = string.format('%016x', seq) .. id
          else
            sched[#sched + 1] = run_ats
            sched[#sched + 1] = id
          end
        end
        stored = stored + 1
        out[#out + 1] = ''
      end
    end
    if l and #l == 0 then  -- every job of the run existed already
      if now_run then fifos[lane] = nil else lanes[lane] = nil end
    end
    if stored > 0 then
      local field = state .. ':' .. prio .. ':' .. queue
      counts[field] = (counts[field] or 0) + stored
      local t = touched[lane]
      if not t then
        t = {ready = 0}
        touched[lane] = t
      end
      if l then
        t.ready = t.ready + stored
      elseif not t.due or run_at < t.due then
        t.due = run_at
      end
    end
  end

  if next(counts) then  -- some job was stored
    for b, entries in pairs(all) do index_many(b, entries) end
    local err = write(zadd_part, KEYS[4], 'the schedule', 'zset', sched)
    if err then return err end
    local names = {}
    for lane, l in pairs(lanes) do
      err = write(zadd_part, P .. 'ready:' .. lane, 'ready lane ' .. lane, 'zset', l)
      if err then return err end
      names[#names + 1] = lane
    end
    for lane, ids in pairs(fifos) do
      err = write(rpush_part, P .. 'fifo:' .. lane, 'ready lane ' .. lane, 'list', ids)
      if err then return err end
      names[#names + 1] = lane
    end
    if #names > 0 then
      for i = 1, #names, 1000 do
        redis.call('SADD', KEYS[3], unpack(names, i, math.min(i + 999, #names)))
      end
    end
    for field, delta in pairs(counts) do add_count(field, delta) end
  end
end

-- Wake-ups: lib.lua's `wake`, defined only when some worker is parked.
if next(touched) == nil or redis.call('HLEN', KEYS[7]) == 0 then return out end

-- include routing (lib.lua's `compile` and `matches`)

local any_paused = redis.call('EXISTS', KEYS[8]) == 1
local budget = 0
local targets = {}
for lane, t in pairs(touched) do
  local colon = string.find(lane, ':', 2, true)
  local qlen = tonumber(string.sub(lane, 2, colon - 1))
  local queue = string.sub(lane, colon + 1, colon + qlen)
  -- A paused queue's jobs wake nobody: claim would not take them.
  if not (any_paused and redis.call('SISMEMBER', KEYS[8], queue) == 1) then
    budget = budget + t.ready
    targets[#targets + 1] = {tonumber(string.sub(lane, 1, 1)), queue,
      string.sub(lane, colon + qlen + 1), t.ready, t.due}
  end
end
if #targets == 0 then return out end
local flat = redis.call('HGETALL', KEYS[7])
for i = 1, #flat, 2 do
  local ok, spec = pcall(cjson.decode, flat[i + 1])
  local compiled, r = false, nil
  if ok and type(spec) == 'table' and type(spec.d) == 'number' then
    compiled, r = pcall(compile, spec)
  end
  local hit = false
  if not compiled then
    -- Damage: dropped like an expired wait (a live worker parks again with a new entry).
    redis.log(redis.LOG_WARNING, 'conveyor ' .. P .. ' waiter ' .. flat[i]
      .. ' had an unreadable entry; dropped')
    redis.call('HDEL', KEYS[7], flat[i])
  elseif spec.d < NOW then
    redis.call('HDEL', KEYS[7], flat[i])  -- its wait is over: it will park again if idle
  else
    for _, l in ipairs(targets) do
      local matched, m = pcall(matches, r, l[1], l[2], l[3])
      if matched and m then
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
    redis.call('HDEL', KEYS[7], flat[i])
  end
end
return out
