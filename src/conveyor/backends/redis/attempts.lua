-- attempts.lua: a job's attempt log (conveyor/attempts.py), taken whole by fail.lua and
-- recover.lua (after lib.lua, whose helpers it uses) where they name it (scripts.py).
--
-- Job hash field `attempt_log`: a JSON array of the attempts that ended without success,
-- oldest first, the last KEEP kept; each entry is the object `attempts.log_entry` makes:
--   {"attempt", "outcome" (failed / dead / lost), "worker_id", "started_at", "ended_at",
--    "error", "traceback"}
-- Entries are written as text, never by cjson.encode of a table: cjson keeps 14
-- significant digits, and a time needs 17 to read back exactly (num). cjson only checks
-- the stored log and reads it back when the oldest entries must be dropped.

-- conveyor.attempts.KEEP: how many ended attempts a job keeps (a test keeps them equal).
local KEEP = 20

-- One value of a stored entry as JSON text again: numbers exact, strings as cjson writes
-- them, anything else (damage: tables, non-finite numbers) as null.
local function log_value(v)
  local t = type(v)
  if t == 'string' then
    return cjson.encode(v)
  elseif t == 'boolean' then
    return tostring(v)
  elseif number(v) then
    return num(v)
  end
  return 'null'
end

-- A stored entry as JSON text again: an object member by member, anything else (damage,
-- which readers skip) as `log_value` writes it; a nested array comes back as {}.
local function log_object(e)
  if type(e) ~= 'table' then
    return log_value(e)
  end
  local parts = {}
  for k, v in pairs(e) do
    if type(k) == 'string' then
      parts[#parts + 1] = cjson.encode(k) .. ':' .. log_value(v)
    end
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- One new entry as JSON text: the attempt's number, how it ended, its worker and start as
-- the job hash holds them, NOW as its end. `texts` is its "error" and "traceback" members,
-- written by the caller, already cut to the log's bounds (attempts.entry_texts). A
-- damaged number, worker or start is written as null (readers skip an entry without a
-- number, and show an unknown worker or start).
local function log_entry(attempts, outcome, worker, started, texts)
  local n, at = number(attempts), number(started)
  local attempt, who, start = 'null', 'null', 'null'
  if n and n % 1 == 0 then attempt = num(n) end
  if type(worker) == 'string' then who = cjson.encode(worker) end
  if at then start = num(at) end
  return '{"attempt":' .. attempt .. ',"outcome":"' .. outcome .. '","worker_id":' .. who
    .. ',"started_at":' .. start .. ',"ended_at":' .. num(NOW) .. ',' .. texts .. '}'
end

-- The log `old` (the stored text, or false for none) with `entry` (JSON text) appended:
-- the old text is kept as it is while it has room, and read back (the KEEP - 1 newest
-- entries kept) once it is full. A damaged log (not JSON, not an array) is started afresh
-- and noted, never allowed to stop the script.
local function log_append(id, old, entry)
  if not old or old == '' then
    return '[' .. entry .. ']'
  end
  local ok, list = pcall(cjson.decode, old)
  local body = ok and type(list) == 'table' and string.match(old, '^%s*(%[.*)%]%s*$')
  if not body then
    note('job ' .. id .. ': its attempt_log was not a JSON array; started afresh')
    return '[' .. entry .. ']'
  end
  local n = #list
  if n == 0 then
    return '[' .. entry .. ']'
  elseif n < KEEP then
    return body .. ',' .. entry .. ']'
  end
  local parts = {}
  for i = n - KEEP + 2, n do
    parts[#parts + 1] = log_object(list[i])
  end
  parts[#parts + 1] = entry
  return '[' .. table.concat(parts, ',') .. ']'
end
