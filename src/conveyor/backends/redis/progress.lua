-- progress.lua: keep a running job's latest progress report (the Progress capability).
--
-- KEYS[1] the job's hash; its field `progress` holds the report as JSON
--   {"done", "total", "note", "attempt", "at"} (conveyor.attempts.progress_json)
-- ARGV[1] P, ARGV[2] now, ARGV[3] lease token, ARGV[4] the report's "done", "total" and
--   "note" members (JSON text, checked by the caller)
-- Returns 1 when the report is kept, with the job's attempts and NOW; 0 when the lease is
-- not current (the job is not running, runs under another token, is missing, or its key
-- is not a hash): nothing changes, and a late report is not counted as fenced.

local f = redis.pcall('HMGET', KEYS[1], 'state', 'lease_token', 'attempts')
if failed(f) or f[1] ~= 'running' or f[2] ~= ARGV[3] then
  return 0
end
-- A damaged count is written as null: readers then show no progress (attempts.py).
local n = number(f[3])
local attempt = 'null'
if n and n % 1 == 0 then attempt = num(n) end
redis.call('HSET', KEYS[1], 'progress',
  '{' .. ARGV[4] .. ',"attempt":' .. attempt .. ',"at":' .. num(NOW) .. '}')
return 1
