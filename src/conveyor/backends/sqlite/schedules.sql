-- The scheduler's queries for the SQLite backend, as named blocks (`-- name: x`).
--
-- Tables (created by migrate_3 in schema.sql):
--   {leases}     name TEXT PK, owner TEXT, expires_at REAL: a named lease (the scheduler's
--                leader lease). Free when absent or when expires_at <= now.
--   {schedules}  name TEXT PK, last_tick REAL: the last tick enqueued per schedule entry.
-- Every write runs inside `BEGIN IMMEDIATE` (see store.py), so the check and the write of
-- each block are atomic across processes.

-- name: repair_lease
-- An expiry that is not a number (damage) never compares <= :now, so the lease could never
-- be taken again: drop it, which frees it (logged by the caller).
DELETE FROM {leases} WHERE name = :name AND typeof(expires_at) NOT IN ('integer', 'real');

-- name: acquire_lease
-- Take a free or expired lease, or renew our own; changes no row when another owner holds it.
INSERT INTO {leases} (name, owner, expires_at) VALUES (:name, :owner, :expires)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE {leases}.owner = excluded.owner OR {leases}.expires_at <= :now;

-- name: release_lease
DELETE FROM {leases} WHERE name = :name AND owner = :owner;

-- name: schedule_state
SELECT name, last_tick FROM {schedules};

-- name: record_tick
-- Move an entry's last tick forward; changes no row when the recorded tick is not older.
-- A recorded tick that is not a number (damage) is replaced: it would never compare older
-- (SQLite orders numbers before text) and the entry would never fire again.
INSERT INTO {schedules} (name, last_tick) VALUES (:name, :tick)
ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick
WHERE {schedules}.last_tick < excluded.last_tick
   OR typeof({schedules}.last_tick) NOT IN ('integer', 'real');
