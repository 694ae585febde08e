-- The latest progress report of a running job (`PostgresProgress`).
--
-- {jobs}.progress (jsonb, see schema.sql) holds one report, `conveyor.attempts.progress_json`:
-- done, total and note as the task gave them (checked by `attempts.check_progress`), the
-- job's attempts when it was made (readers show it only for the current attempt) and the
-- store's now. A report replaces the last one and touches no other column, and no index
-- covers the column, so the update can stay HOT, like a lease extension.

-- name: report_progress
-- Only the job held by this lease (running, current token) takes the report; any other call
-- changes nothing and returns no row. A late report is harmless: it is not counted as fenced.
WITH t AS (SELECT {now} AS now)
UPDATE {jobs} j
SET progress = jsonb_build_object(
    'done', %(done)s::float8, 'total', %(total)s::float8, 'note', %(note)s::text,
    'attempt', j.attempts, 'at', t.now
)
FROM t
WHERE j.id = %(id)s AND j.state = 'running' AND j.lease_token = %(token)s
RETURNING j.id;
