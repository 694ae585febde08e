-- Reading and repairing jobs on SQLite (the Admin capability), as named blocks (`-- name: x`).
--
-- {jobs} and {counters} are described at the top of schema.sql. Further table (created by
-- migrate_4 in schema.sql):
--   {paused}   queue TEXT PK: the paused queues (`claim` and `wait_probe` skip their jobs).
-- `{filters}` and `{states}` are slots for clauses built at run time (see queries.sql).
-- Writes run inside `BEGIN IMMEDIATE` (see admin.py).

-- name: counters
SELECT name, value FROM {counters};

-- name: query
SELECT * FROM {jobs}
WHERE {filters}
ORDER BY seq DESC
LIMIT :limit OFFSET :offset;

-- name: stats
-- Due scheduled jobs count as ready: they are claimable now.
SELECT queue, priority,
       CASE WHEN state = 'scheduled' AND run_at <= :now THEN 'ready' ELSE state END AS st,
       COUNT(*) AS n
FROM {jobs}
GROUP BY queue, priority, st;

-- name: dead_jobs
-- :ids is NULL for every dead job, or a JSON array of ids (no limit on how many).
SELECT seq, unique_key FROM {jobs}
WHERE state = 'dead' AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
ORDER BY seq;

-- name: retry_dead
UPDATE {jobs}
SET state = 'ready', attempts = 0, recoveries = 0, run_at = :now, finished_at = NULL,
    updated_at = :now, lease_token = NULL, lease_expires_at = NULL
WHERE seq = :seq AND state = 'dead';

-- name: cancel
UPDATE {jobs}
SET state = 'cancelled', updated_at = :now, finished_at = :now,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state IN ('scheduled', 'ready', 'running');

-- name: purge
-- Only final states ever reach here; a job with no finished_at counts as finished at 0.
DELETE FROM {jobs}
WHERE state IN ({states})
  AND (:before IS NULL OR coalesce(finished_at, 0.0) < :before);

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
