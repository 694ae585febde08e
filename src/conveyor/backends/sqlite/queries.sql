-- The core job verbs' queries on SQLite (store.py), as named blocks (`-- name: x`); the
-- capabilities keep theirs beside them (admin.sql, telemetry.sql, schedules.sql, limits.sql).
--
-- The data model and the indexes are described at the top of schema.sql. `{jobs}` and the
-- other names in braces are table and index names, filled in from `sql.NAMES` when the file
-- is loaded. `{routing}`, `{filters}` and `{states}` are slots for clauses built at run time
-- from a worker's routing or a query's filters; they only ever hold `?`-free named
-- parameters (`:q0`, `:p1`, ...), never values.
--
-- Write queries run inside `BEGIN IMMEDIATE`, so a read followed by a write in the same
-- transaction (enqueue's unique-key check, claim's promote-then-take) is atomic across
-- processes. "Held" below means: the job is running under exactly this lease token.
--
-- The attempt log (`attempt_log`, a JSON array) is read and extended in Python with
-- `conveyor.attempts.append_entry`, and written by the same UPDATE as the state change it
-- records (fail_*, recover_*), inside the transaction that read it.

-- name: meta_exists
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name;

-- name: schema_version
SELECT value FROM {meta} WHERE key = 'schema_version';

-- name: set_schema_version
INSERT INTO {meta} (key, value) VALUES ('schema_version', :version)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: data_version
-- Changes whenever another connection (any process) commits to the file.
PRAGMA data_version;

-- name: active_with_key
-- The job holding a unique key, if any (served by the partial unique index).
SELECT id FROM {jobs}
WHERE unique_key = :unique_key AND state IN ('scheduled', 'ready', 'running');

-- name: insert_job
INSERT INTO {jobs} (
    id, task, queue, priority, state, payload, headers, attempts, max_retries, timeout,
    run_at, created_at, updated_at, unique_key
) VALUES (
    :id, :task, :queue, :priority, :state, :payload, :headers, 0, :max_retries, :timeout,
    :run_at, :now, :now, :unique_key
);

-- name: promote_due
-- Due scheduled jobs become ready before every claim, whatever the routing.
-- INDEXED BY: without ANALYZE statistics the planner prefers {jobs_claim} (state = ?) and
-- would walk every scheduled job instead of only the due ones.
UPDATE {jobs} INDEXED BY {jobs_due} SET state = 'ready', updated_at = :now
WHERE state = 'scheduled' AND run_at <= :now;

-- name: promote_damaged
-- A run_at that is not a number (damage: TEXT or a BLOB) can never come due, since SQLite
-- orders every number before any text or blob. `run_at >= ''` finds exactly those rows,
-- with one seek to the far end of {jobs_due}, so they become ready and the claim that
-- takes them quarantines them instead of leaving them scheduled forever. (One OR with
-- promote_due's test would walk the whole index: INDEXED BY rules out a two-range plan.)
UPDATE {jobs} INDEXED BY {jobs_due} SET state = 'ready', updated_at = :now
WHERE state = 'scheduled' AND run_at >= '';

-- name: claim
-- The inner SELECT walks {jobs_claim} in run order; RETURNING gives rows in no set order,
-- so the caller sorts them again. Paused queues are skipped: the NOT IN subquery does not
-- depend on the row, so SQLite reads the tiny {paused} table once per claim.
UPDATE {jobs}
SET state = 'running',
    attempts = attempts + 1,
    lease_token = :token,
    lease_expires_at = :expires,
    worker_id = :worker_id,
    started_at = :now,
    updated_at = :now
WHERE seq IN (
    SELECT seq FROM {jobs}
    WHERE state = 'ready' AND {routing} AND queue NOT IN (SELECT queue FROM {paused})
    ORDER BY priority, run_at, seq
    LIMIT :limit
)
RETURNING *;

-- name: quarantine
-- A claimed row that cannot be decoded: dead at once, its attempt given back (it never
-- ran), the lease dropped. Only the columns the claim and this outcome own are written, so
-- the damaged content stays in the row for inspection.
UPDATE {jobs}
SET state = 'dead', attempts = attempts - 1, last_error = :error, failed_at = :now,
    finished_at = :now, updated_at = :now, lease_token = NULL, lease_expires_at = NULL
WHERE seq = :seq AND state = 'running';

-- name: extend
UPDATE {jobs} SET lease_expires_at = :expires
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: complete
UPDATE {jobs}
SET state = 'succeeded', result = :result, updated_at = :now, finished_at = :now,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: held_for_log
-- What a held job's attempt log entry is made of, and the log to extend.
SELECT attempts, worker_id, started_at, attempt_log FROM {jobs}
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: fail_retry
-- :run_at is now + the failure's retry_in, both on the store's clock; :log is the attempt
-- log with this attempt added (`failed`).
UPDATE {jobs}
SET state = 'scheduled', run_at = :run_at, last_error = :error, traceback = :traceback,
    attempt_log = :log, updated_at = :now, lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: fail_dead
-- :log is the attempt log with this attempt added (`dead`).
UPDATE {jobs}
SET state = 'dead', last_error = :error, traceback = :traceback, attempt_log = :log,
    failed_at = :now, finished_at = :now, updated_at = :now,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: release
-- The attempt is given back: the job did not get to run to an outcome.
UPDATE {jobs}
SET state = 'ready', attempts = attempts - 1, updated_at = :now,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: defer
-- Back to wait without using an attempt; the job stays active, so it keeps its unique key.
-- :headers is NULL to keep the stored headers.
UPDATE {jobs}
SET state = :state, run_at = :run_at, attempts = attempts - 1,
    headers = coalesce(:headers, headers), updated_at = :now,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token;

-- name: expired_leases
-- Rows by seq, not id: an id may be damaged, and the seq cannot be. A lease expiry that is
-- not a number (damage) never compares <= :now, so the second half takes those rows (a
-- seek to the end of the index, as in promote_damaged): such a lease counts as expired.
-- The attempt's fields and the log come along for the `lost` entry.
SELECT seq, id, recoveries, lease_expires_at, attempts, worker_id, started_at, attempt_log,
       0 AS damaged
FROM {jobs} INDEXED BY {jobs_lease}
WHERE state = 'running' AND lease_expires_at <= :now
UNION ALL
SELECT seq, id, recoveries, lease_expires_at, attempts, worker_id, started_at, attempt_log,
       1 AS damaged
FROM {jobs} INDEXED BY {jobs_lease}
WHERE state = 'running' AND lease_expires_at >= '';

-- name: recover_ready
-- :log is the attempt log with the lost attempt added (its number taken before the
-- attempt is given back).
UPDATE {jobs}
SET state = 'ready', recoveries = recoveries + 1, attempts = attempts - 1, updated_at = :now,
    attempt_log = :log, lease_token = NULL, lease_expires_at = NULL
WHERE seq = :seq AND state = 'running';

-- name: recover_dead
-- A poison pill: the job kept losing its worker. Its last run is logged as lost too.
UPDATE {jobs}
SET state = 'dead', recoveries = recoveries + 1, attempts = attempts - 1,
    last_error = :error, attempt_log = :log, failed_at = :now, finished_at = :now,
    updated_at = :now, lease_token = NULL, lease_expires_at = NULL
WHERE seq = :seq AND state = 'running';

-- name: bump_counter
UPDATE {counters} SET value = value + :n WHERE name = :name;

-- name: get
SELECT * FROM {jobs} WHERE id = :id;

-- name: wait_probe
-- Is matching work ready now, and when is the next matching scheduled job due? Jobs of
-- paused queues count for neither, or a waiter would wake (and claim nothing) at once.
SELECT
    EXISTS (
        SELECT 1 FROM {jobs}
        WHERE state = 'ready' AND {routing} AND queue NOT IN (SELECT queue FROM {paused})
    ) AS ready,
    (SELECT run_at FROM {jobs} INDEXED BY {jobs_due}
     WHERE state = 'scheduled' AND {routing} AND queue NOT IN (SELECT queue FROM {paused})
     ORDER BY run_at LIMIT 1) AS next_due;
