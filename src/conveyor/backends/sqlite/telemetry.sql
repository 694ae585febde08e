-- Throughput history and the live-worker registry on SQLite (the Telemetry capability), as
-- named blocks (`-- name: x`).
--
-- {workers} is described at the top of schema.sql: a row is live while expires_at > now.
-- Further table (created by migrate_4 in schema.sql):
--   {history}  minute INTEGER, queue TEXT, succeeded INTEGER, failed INTEGER;
--              PK (minute, queue): attempts finished per minute (a multiple of 60) and queue.
-- Writes run inside `BEGIN IMMEDIATE` (see telemetry.py).

-- name: record_history
INSERT INTO {history} (minute, queue, succeeded, failed)
VALUES (:minute, :queue, :succeeded, :failed)
ON CONFLICT (minute, queue) DO UPDATE SET
    succeeded = {history}.succeeded + excluded.succeeded,
    failed = {history}.failed + excluded.failed;

-- name: prune_history
DELETE FROM {history} WHERE minute < :cutoff;

-- name: repair_history
-- A minute that is not a number (damage) would never be pruned: drop it (one seek past
-- the numbers of the primary key; logged by the caller).
DELETE FROM {history} WHERE minute >= '';

-- name: history
SELECT minute, queue, succeeded, failed FROM {history}
WHERE minute >= :since
ORDER BY minute, queue;

-- name: drop_expired_workers
-- An expiry that is not a number (damage) would never expire: such rows go too.
DELETE FROM {workers} WHERE expires_at <= :now OR typeof(expires_at) NOT IN ('integer', 'real');

-- name: register_worker
-- An upsert keeps the row (and so its place in the listing) while the worker stays live.
INSERT INTO {workers} (id, host, pid, pool, queues, started_at, last_seen, expires_at, stats)
VALUES (:id, :host, :pid, :pool, :queues, :started_at, :now, :expires, :stats)
ON CONFLICT (id) DO UPDATE SET
    host = excluded.host, pid = excluded.pid, pool = excluded.pool, queues = excluded.queues,
    started_at = excluded.started_at, last_seen = excluded.last_seen,
    expires_at = excluded.expires_at, stats = excluded.stats;

-- name: unregister_worker
DELETE FROM {workers} WHERE id = :id;

-- name: workers
SELECT * FROM {workers} WHERE expires_at > :now ORDER BY rowid;
