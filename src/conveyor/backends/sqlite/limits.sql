-- Rate windows and concurrency slots for the SQLite backend, as named blocks (`-- name: x`).
--
-- Tables (created by migrate_4 in schema.sql):
--   {rate_starts}  key TEXT, started_at REAL: one row per start a sliding window granted,
--                  indexed by {rate_starts_key} (key, started_at). A start is in the window
--                  of `period` seconds while started_at > now - period.
--   {slots}        key TEXT, holder TEXT, expires_at REAL; PK (key, holder): a held
--                  concurrency slot, free once expires_at <= now.
-- Every block runs inside one `BEGIN IMMEDIATE` transaction (see limits.py), so counting and
-- taking are atomic across processes.

-- name: rate_prune
DELETE FROM {rate_starts} WHERE key = :key AND started_at <= :cutoff;

-- name: rate_repair
-- Starts whose time is not a number (damage) would never leave the window and would sort
-- first below: drop them (one seek past the key's numbers; logged by the caller).
DELETE FROM {rate_starts} WHERE key = :key AND started_at >= '';

-- name: rate_nth_newest
-- The start that leaves the window first among the newest :skip + 1; none when fewer exist.
SELECT started_at FROM {rate_starts}
WHERE key = :key
ORDER BY started_at DESC
LIMIT 1 OFFSET :skip;

-- name: rate_record
INSERT INTO {rate_starts} (key, started_at) VALUES (:key, :now);

-- name: slot_prune
DELETE FROM {slots} WHERE key = :key AND expires_at <= :now;

-- name: slot_repair
-- A slot whose expiry is not a number (damage) would be held forever: it counts as expired.
DELETE FROM {slots} WHERE key = :key AND typeof(expires_at) NOT IN ('integer', 'real');

-- name: slot_renew
UPDATE {slots} SET expires_at = :expires WHERE key = :key AND holder = :holder;

-- name: slot_count
SELECT COUNT(*) FROM {slots} WHERE key = :key;

-- name: slot_take
INSERT INTO {slots} (key, holder, expires_at) VALUES (:key, :holder, :expires);

-- name: slot_release
DELETE FROM {slots} WHERE key = :key AND holder = :holder;
