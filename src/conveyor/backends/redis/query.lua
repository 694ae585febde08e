-- query.lua: jobs newest first, filtered by state, queue and task, with offset and limit.
--
-- KEYS[1] buckets  ZSET bucket -> bucket: the buckets of the index of every job (lib.lua)
-- KEYS[2] all      ZSET seq -> id: the index of a store made before the buckets, moved
--                  into them here, MIGRATE entries per call
-- KEYS[3] seq      STRING the store's enqueue counter (which bucket is still filling)
-- derived: index buckets, job hashes
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
  for i = 1, #legacy, 2 do
    local seq = number(legacy[i + 1])
    if seq then
      local b = bucket_of(seq)
      redis.call('ZADD', P .. 'all:' .. b, seq, legacy[i])
      redis.call('ZADD', KEYS[1], b, b)
    end
  end
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
local function add(id)
  local key = job_key(id)
  local fields = redis.pcall('HGETALL', key)
  if failed(fields) then fields = redis.call('TYPE', key).ok end
  out[#out + 1] = id
  out[#out + 1] = fields
end
-- Buckets below the one still filling get no new job: an empty one is forgotten.
local filling = bucket_of(number(redis.call('GET', KEYS[3])) or 1)
local pos, page = 0, 100
while #out < 2 * limit do
  local buckets = redis.pcall('ZREVRANGE', KEYS[1], pos, pos + page - 1)
  if failed(buckets) then
    -- Damage: the registry is made again from the buckets that exist (one EXISTS per
    -- bucket number ever used: a one-off repair).
    note('the index bucket registry was not a ZSET: rebuilt')
    redis.call('DEL', KEYS[1])
    for b = 0, filling do
      if redis.call('EXISTS', P .. 'all:' .. b) == 1 then redis.call('ZADD', KEYS[1], b, b) end
    end
    buckets = redis.call('ZREVRANGE', KEYS[1], pos, pos + page - 1)
  end
  for _, b in ipairs(buckets) do
    local key = P .. 'all:' .. b
    local n = redis.pcall('ZCARD', key)
    if failed(n) then
      note('index bucket ' .. b .. ' was not a ZSET: deleted')
      redis.call('DEL', key)
      n = 0
    end
    if n == 0 then
      if (number(b) or -1) < filling then
        redis.call('ZREM', KEYS[1], b)
        pos = pos - 1
      end
    elseif not filtered and skip >= n then
      skip = skip - n
    else
      for _, id in ipairs(redis.call('ZREVRANGE', key, 0, -1)) do
        if #out >= 2 * limit then break end
        local hit = true
        if filtered then
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
      end
    end
  end
  if #buckets < page then break end
  pos = pos + page
end
return out
