-- attempts.lua: a job's attempt log (conveyor/attempts.py), taken whole by fail.lua and
-- recover.lua (after lib.lua, whose helpers it uses) where they name it (scripts.py).
--
-- Job hash field `attempt_log`: a JSON array of the attempts that ended without success,
-- oldest first, the last KEEP kept; each entry is the object `attempts.log_entry` makes:
--   {"attempt", "outcome" (failed / dead / lost), "worker_id", "started_at", "ended_at",
--    "error", "traceback"}
-- Entries are written as text, never by cjson.encode of a table: cjson keeps 14
-- significant digits, and a time needs 17 to read back exactly (num). A new entry is added
-- to the stored text, and the oldest cut off it, once cjson has checked it is an array.

-- conveyor.attempts.KEEP: how many ended attempts a job keeps (a test keeps them equal).
local KEEP = 10

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

-- The positions of each entry's start after the first (",{" before "attempt") in a log as
-- log_append writes it, or nil when the text is not in that shape. An entry's own text
-- cannot hold ',{"attempt":' (a quote inside a JSON string is escaped), so when there is
-- one position per entry after the first, they are the entries' starts.
local function log_starts(text, n)
  if string.sub(text, 1, 12) ~= '[{"attempt":' or string.byte(text, -1) ~= 93 then
    return nil
  end
  local starts, at = {}, 1
  while true do
    at = string.find(text, ',{"attempt":', at, true)
    if not at then break end
    starts[#starts + 1] = at
    at = at + 12
  end
  if #starts ~= n - 1 then return nil end
  return starts
end

-- The log `old` (the stored text, or false for none) with `entry` (JSON text) appended,
-- the oldest dropped past KEEP. The stored text is checked with cjson (a damaged log, not
-- JSON or not an array, is started afresh and noted, never allowed to stop the script),
-- then added to as text: only a log in another shape than this file writes (edited by
-- hand) is read back entry by entry once it is full.
local function log_append(id, old, entry)
  if not old or old == '' then
    return '[' .. entry .. ']'
  end
  local ok, list = pcall(cjson.decode, old)
  if not ok or type(list) ~= 'table' or not string.find(old, '^%s*%[') then
    note('job ' .. id .. ': its attempt_log was not a JSON array; started afresh')
    return '[' .. entry .. ']'
  end
  local n = #list
  if n == 0 then
    return '[' .. entry .. ']'
  end
  local ends_plainly = string.byte(old, -1) == 93  -- "]"
  if n < KEEP and ends_plainly then
    return string.sub(old, 1, -2) .. ',' .. entry .. ']'
  end
  local starts = ends_plainly and log_starts(old, n)
  if starts then
    -- keep the newest KEEP - 1: from the start of entry n - KEEP + 2 (its comma skipped)
    return '[' .. string.sub(old, starts[n - KEEP + 1] + 1, -2) .. ',' .. entry .. ']'
  end
  local parts = {}
  for i = math.max(1, n - KEEP + 2), n do
    parts[#parts + 1] = log_object(list[i])
  end
  parts[#parts + 1] = entry
  return '[' .. table.concat(parts, ',') .. ']'
end
