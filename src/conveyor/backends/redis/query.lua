-- query.lua: jobs newest first, filtered by state, queue and task, with offset and limit.
--
-- KEYS[1] buckets  ZSET bucket -> bucket: the buckets of the index of every job (lib.lua)
-- KEYS[2] all      ZSET seq -> id: the index of a store made before the buckets, moved
--                  into them here, MIGRATE entries per call
-- KEYS[3] seq      STRING the store's enqueue counter (how far a registry repair looks)
-- derived: index buckets, lanes and their LIST parts, job hashes
-- Jobs come from the index buckets and from every lane's LIST part (jobs waiting to run
-- now, not yet in the index: lib.lua), merged by seq, newest first.
-- ARGV[1] P, ARGV[2] now (unused), ARGV[3] states ("" = any, else comma separated),
-- ARGV[4] queue ("" = any, else "q" .. name), ARGV[5] task (same form), ARGV[6] offset,
-- ARGV[7] limit
-- Returns: "more" when the old index still holds entries (call again: nothing is listed
--   before it is moved whole), else per job, its id then its HGETALL array (empty for an
--   id whose record is gone, or, for a key of another type than a hash (damage), that
--   type's name as a string).

local MIGRATE = 10000
local legacy = redis.pcall('ZRANGE', KEYS[2], 0, MIGRATE - 1, 'WITHSCORES')
if failed(legacy) then
  note('the old job index was not a ZSET: deleted')
  redis.call('DEL', KEYS[2])
elseif #legacy > 0 then
  local by_bucket = {}
  for i = 1, #legacy, 2 do
    if number(legacy[i + 1]) then gather(by_bucket, legacy[i + 1], legacy[i]) end
  end
  for b, entries in pairs(by_bucket) do index_many(b, entries) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, #legacy / 2 - 1)
  if redis.call('EXISTS', KEYS[2]) == 1 then return 'more' end
end

local states = nil
if ARGV[3] ~= '' then
  states = {}
  for s in string.gmatch(ARGV[3], '[^,]+') do states[s] = true end
end
local queue, task = nil, nil
if ARGV[4] ~= '' then queue = string.sub(ARGV[4], 2) end
if ARGV[5] ~= '' then task = string.sub(ARGV[5], 2) end
local filtered = states or queue or task
local skip, limit = tonumber(ARGV[6]), tonumber(ARGV[7])
local out = {}
if limit <= 0 then return out end

-- Source 1, the index buckets, newest first; an empty one is forgotten (whatever writes
-- to a bucket registers it again).
-- A page of registered buckets, the next one's place in it, where the next page starts.
local buckets, bnext, bpos, page = {}, 1, 0, 100
local entries, epos = {}, 1
local function next_bucket()
  while true do
    if bnext > #buckets then
      bnext = 1
      buckets = redis.pcall('ZREVRANGE', KEYS[1], bpos, bpos + page - 1)
      if failed(buckets) then
        register({})  -- damage: made again from the buckets there are
        buckets = redis.call('ZREVRANGE', KEYS[1], bpos, bpos + page - 1)
      end
      if #buckets == 0 then return false end
      bpos = bpos + #buckets
    end
    local b = buckets[bnext]
    bnext = bnext + 1
    local key = P .. 'all:' .. b
    local got = redis.pcall('ZREVRANGE', key, 0, -1, 'WITHSCORES')
    if failed(got) then
      note('index bucket ' .. b .. ' was not a ZSET: deleted')
      redis.call('DEL', key)
      got = {}
    end
    if #got > 0 then
      entries, epos = got, 1
      return true
    end
    redis.call('ZREM', KEYS[1], b)
    bpos = bpos - 1
  end
end

-- Each source: {seq of its next entry (nil when done), its id, advance function, from a
-- lane (the lane's queue and task, which a job waiting in it has)}.
local function advance_index(src)
  if epos > #entries and not next_bucket() then
    src[1] = nil
    return
  end
  src[2], src[1] = entries[epos], number(entries[epos + 1]) or 0
  epos = epos + 2
end
local sources = {{nil, nil, advance_index}}

-- Source 2.., each lane's LIST part, from its tail (the newest job), unless the filters
-- leave its jobs out: they are all ready, of the lane's queue and task.
if not states or states.ready then
  for _, lane in ipairs(redis.call('SMEMBERS', P .. 'lanes')) do
    local _, q, t = parse_lane(lane)
    if q and (not queue or queue == q) and (not task or task == t) then
      -- A page of the list from its end, read from its last id back (`i`).
      local key, at, got, i = P .. 'fifo:' .. lane, 0, {}, 0
      local src = {nil, nil, nil, true}
      src[3] = function()
        if i == 0 then
          got = redis.pcall('LRANGE', key, -(at + page), -(at + 1))
          if failed(got) or #got == 0 then
            src[1] = nil
            return
          end
          at = at + #got
          i = #got
        end
        local id = got[i]
        i = i - 1
        src[2] = id
        src[1] = number(redis.pcall('HGET', job_key(id), 'seq')) or -1
      end
      sources[#sources + 1] = src
    end
  end
end
for _, src in ipairs(sources) do src[3](src) end

local function add(id)
  local key = job_key(id)
  local fields = redis.pcall('HGETALL', key)
  if failed(fields) then fields = redis.call('TYPE', key).ok end
  out[#out + 1] = id
  out[#out + 1] = fields
end

while #out < 2 * limit do
  local best
  for i, src in ipairs(sources) do
    if src[1] and (not best or src[1] > sources[best][1]) then best = i end
  end
  if not best then break end
  local src = sources[best]
  local id = src[2]
  local hit = true
  if filtered and not src[4] then
    local f = redis.pcall('HMGET', job_key(id), 'state', 'queue', 'task')
    if failed(f) then f = {} end  -- a key of another type matches no filter
    hit = (not states or states[f[1]]) and (not queue or queue == f[2])
      and (not task or task == f[3])
  end
  if hit then
    if skip > 0 then
      skip = skip - 1
    else
      add(id)
    end
  end
  src[3](src)
end
return out
