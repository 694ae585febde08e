-- The scheduler's queries for the PostgreSQL backend, as named blocks (`-- name: x`).
--
-- Tables (schema.sql, migrate_3):
--   {leases}     name text PK, owner text, expires_at float8: a named lease (the scheduler's
--                leader lease), free when absent or when expires_at <= now.
--   {schedules}  name text PK, last_tick float8: the last tick enqueued per schedule entry.
-- `{now}` is the backend's clock (see sql.NOW).

-- name: acquire_lease
-- Take a free or expired lease, or renew our own; returns no row when another owner holds
-- it. Concurrent callers serialise on the primary key, so exactly one wins a free lease.
-- A NaN or infinite expiry (damage; `NaN <= now` is false) counts as expired, or no
-- scheduler would ever lead again.
WITH t AS (SELECT {now} AS now)
INSERT INTO {leases} AS l (name, owner, expires_at)
SELECT %(name)s, %(owner)s, t.now + %(ttl)s FROM t
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE l.owner = excluded.owner OR l.expires_at <= {now} OR l.expires_at >= 'Infinity'
RETURNING l.owner;

-- name: release_lease
DELETE FROM {leases} WHERE name = %(name)s AND owner = %(owner)s;

-- name: schedule_state
SELECT name, last_tick FROM {schedules} WHERE name = ANY(%(names)s::text[]);

-- name: record_tick
-- Move an entry's last tick forward; returns no row when the recorded tick is not older.
-- Run in the transaction that enqueues the tick's job: a concurrent recorder of the same
-- tick waits on this row, then sees the new tick and records nothing. A NaN or +Infinity
-- last tick (damage: no tick is ever later) is replaced, or the entry would never fire.
INSERT INTO {schedules} AS s (name, last_tick) VALUES (%(name)s, %(tick)s)
ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick
WHERE s.last_tick < excluded.last_tick OR s.last_tick >= 'Infinity'
RETURNING s.name;
