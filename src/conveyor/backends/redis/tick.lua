-- tick.lua: record a schedule entry's tick, then enqueue its jobs, in one script.
--
-- Loaded as lib.lua + this file + enqueue.lua (scripts.py), so the enqueue below is the
-- very same code as a plain enqueue's, and the tick record and the jobs commit together.
-- KEYS[1..8] as enqueue.lua (all, seq, lanes, scheduled, unique, counts, waiters, paused)
-- KEYS[9]    schedules  HASH entry name -> last tick enqueued (seconds since the epoch)
-- ARGV       as enqueue.lua, then two more: entry name, tick
-- Returns: nil (and changes nothing) when the recorded tick is not older than this one;
-- otherwise enqueue.lua's reply. A recorded tick that is not a number (damage) counts as
-- none, so the schedule goes on (and the record is overwritten).

local tick_name, tick_at = ARGV[#ARGV - 1], tonumber(ARGV[#ARGV])
local last_tick = redis.call('HGET', KEYS[9], tick_name)
if number(last_tick) and number(last_tick) >= tick_at then
  return false
end
redis.call('HSET', KEYS[9], tick_name, num(tick_at))
