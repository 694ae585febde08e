-- A running job's latest progress report on SQLite (the Progress capability), as a named
-- block (`-- name: x`).
--
-- {jobs}.progress (added by migrate_5 in schema.sql) holds one JSON object,
-- `conveyor.attempts.progress_json`: {"done", "total", "note", "attempt", "at"}. A report
-- replaces the last one; it stays after the job ends, and readers show it only while its
-- attempt is the job's (`JobRecord.current_progress`).

-- name: report_progress
-- Held: running under exactly this lease token. :report is built in Python with the store's
-- now; the job's own attempts go in here, in the same statement, so the report belongs to
-- the attempt that holds the lease. (json_set keeps the report's numbers as written.)
UPDATE {jobs} SET progress = json_set(:report, '$.attempt', attempts)
WHERE id = :id AND state = 'running' AND lease_token = :token;
