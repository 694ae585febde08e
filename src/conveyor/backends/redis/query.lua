-- query.lua: jobs newest first, filtered by state, queue and task, with offset and limit.
--
-- KEYS[1] all  ZSET seq -> id, every job
-- derived: job hashes
-- ARGV[1] P, ARGV[2] now (unused), ARGV[3] states ("" = any, else comma separated),
-- ARGV[4] queue ("" = any, else "q" .. name), ARGV[5] task (same form), ARGV[6] offset,
-- ARGV[7] limit
-- Returns: per job, its id then its HGETALL array (empty for an id whose record is gone,
--   or, for a key of another type than a hash (damage), that type's name as a string).

local states = nil
if ARGV[3] ~= '' then
  states = {}
  for s in string.gmatch(ARGV[3], '[^,]+') do states[s] = true end
end
local queue, task = nil, nil
if ARGV[4] ~= '' then queue = string.sub(ARGV[4], 2) end
if ARGV[5] ~= '' then task = string.sub(ARGV[5], 2) end
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
if not (states or queue or task) then
  for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], skip, skip + limit - 1)) do
    add(id)
  end
  return out
end
local pos, page = 0, 500
while #out < 2 * limit do
  local ids = redis.call('ZREVRANGE', KEYS[1], pos, pos + page - 1)
  for _, id in ipairs(ids) do
    local f = redis.pcall('HMGET', job_key(id), 'state', 'queue', 'task')
    if failed(f) then f = {} end  -- a key of another type matches no filter
    if (not states or states[f[1]]) and (not queue or queue == f[2])
        and (not task or task == f[3]) then
      if skip > 0 then
        skip = skip - 1
      elseif #out < 2 * limit then
        add(id)
      end
    end
  end
  if #ids < page then break end
  pos = pos + page
end
return out
