-- What the dashboard and alerts steer and read, as named blocks (`-- name: x`).
--
-- Tables (created by migrate_4 in schema.sql):
--   {paused}   queue TEXT PK: the paused queues (`claim` and `wait_probe` skip their jobs).
--   {history}  minute INTEGER, queue TEXT, succeeded INTEGER, failed INTEGER;
--              PK (minute, queue): attempts finished per minute (a multiple of 60) and queue.
-- Writes run inside `BEGIN IMMEDIATE` (see operations.py).

-- name: pause_queue
INSERT INTO {paused} (queue) VALUES (:queue) ON CONFLICT (queue) DO NOTHING;

-- name: resume_queue
DELETE FROM {paused} WHERE queue = :queue;

-- name: paused_queues
SELECT queue FROM {paused} ORDER BY queue;

-- name: delete_final
-- :ids is a JSON array of ids; active jobs are left alone. The unary + keeps the planner
-- from walking {jobs_claim} over every final job instead of looking the ids up.
DELETE FROM {jobs}
WHERE id IN (SELECT value FROM json_each(:ids))
  AND +state IN ('succeeded', 'dead', 'cancelled');

-- name: oldest_ready
-- Per queue, the earliest run_at among ready jobs and due scheduled ones (paused or not).
SELECT queue, MIN(run_at) AS oldest FROM (
    SELECT queue, run_at FROM {jobs} WHERE state = 'ready'
    UNION ALL
    SELECT queue, run_at FROM {jobs} INDEXED BY {jobs_due}
    WHERE state = 'scheduled' AND run_at <= :now
)
GROUP BY queue;

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
