-- What the dashboard and alerts steer and read, for the PostgreSQL backend (`-- name: x`).
--
-- Tables (schema.sql, migrate_4):
--   {paused}   queue text PK, paused_at float8: the paused queues. `claim` and `probe` in
--              queries.sql skip their jobs; enqueueing into them goes on.
--   {history}  (minute bigint, queue text) PK, succeeded and failed bigint: finished
--              attempts per minute (the Unix time of the minute's first second).
--   {jobs}     see schema.sql.
-- `{now}` is the backend's clock (see sql.NOW).

-- name: pause_queue
WITH t AS (SELECT {now} AS now)
INSERT INTO {paused} (queue, paused_at) SELECT %(queue)s, t.now FROM t
ON CONFLICT (queue) DO NOTHING;

-- name: resume_queue
-- Unpause, and wake idle workers on commit (only when the queue was paused): they slept
-- through its ready jobs.
WITH gone AS (
    DELETE FROM {paused} WHERE queue = %(queue)s RETURNING queue
),
wake AS (
    SELECT pg_notify(%(channel)s, queue) FROM gone WHERE %(channel)s::text IS NOT NULL
)
SELECT count(*) AS resumed, (SELECT count(*) FROM wake) AS notified FROM gone;

-- name: paused_queues
-- Sorted by code point, as Python sorts strings, whatever the database's collation.
SELECT queue FROM {paused} ORDER BY queue COLLATE "C";

-- name: delete_jobs
-- Delete the given jobs that are final; an active job is left alone (and a job that turns
-- final while this runs is re-checked against the WHERE clause before it goes).
WITH gone AS (
    DELETE FROM {jobs}
    WHERE id = ANY(%(ids)s::text[]) AND state IN ('succeeded', 'dead', 'cancelled')
    RETURNING id
)
SELECT count(*) AS deleted FROM gone;

-- name: oldest_ready
-- Per queue, the oldest run_at among ready and due scheduled jobs (paused queues too):
-- reads only the jobs_ready and jobs_scheduled partial indexes' rows. A damaged run_at
-- (NaN or infinite: the claim quarantines the job) is no time to measure a wait from.
WITH t AS (SELECT {now} AS now)
SELECT queue, min(run_at) AS oldest FROM (
    SELECT queue, run_at FROM {jobs} WHERE state = 'ready'
    UNION ALL
    SELECT s.queue, s.run_at FROM {jobs} s, t WHERE s.state = 'scheduled' AND s.run_at <= t.now
) r
WHERE run_at > '-Infinity' AND run_at < 'Infinity'
GROUP BY queue;

-- name: record_history
-- Add the points to their minutes, then drop minutes older than %(keep)s seconds before
-- now. Points of one (minute, queue) are summed first (one upsert may touch a row only
-- once), rows are written in key order (so concurrent writers cannot deadlock), and the
-- upsert adds to what concurrent writers stored: nothing is lost. Points already older
-- than the cut-off are not stored at all. Sums saturate at the int8 maximum, so a row
-- damaged up to it cannot make every later write fail.
WITH t AS (SELECT {now} AS now),
gone AS (
    DELETE FROM {history} h USING t
    WHERE h.minute < ceil(t.now - %(keep)s::float8)::int8  -- whole minutes: the key's index
)
INSERT INTO {history} AS h (minute, queue, succeeded, failed)
SELECT p.minute, p.queue, sum(p.succeeded), sum(p.failed)
FROM unnest(
    %(minutes)s::int8[], %(queues)s::text[], %(succeeded)s::int8[], %(failed)s::int8[]
) AS p (minute, queue, succeeded, failed), t
WHERE p.minute >= t.now - %(keep)s::float8
GROUP BY p.minute, p.queue
ORDER BY p.minute, p.queue
ON CONFLICT (minute, queue) DO UPDATE SET
    succeeded = least(h.succeeded::numeric + excluded.succeeded, 9223372036854775807)::int8,
    failed = least(h.failed::numeric + excluded.failed, 9223372036854775807)::int8;

-- name: history
SELECT minute, queue, succeeded, failed FROM {history}
WHERE minute >= ceil(%(since)s::float8)::int8
ORDER BY minute, queue COLLATE "C";
