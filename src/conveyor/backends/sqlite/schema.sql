-- Conveyor's SQLite schema, as forward-only migration steps.
--
-- Each `-- name: migrate_N` block takes the store from schema version N-1 to N. `open()`
-- runs the missing steps in order inside one `BEGIN IMMEDIATE` transaction and then records
-- the new version in {meta}, so several processes starting at once apply each step once.
-- Never edit a released step: add a new one.
--
-- Data model
-- ----------
-- {jobs}      one row per job; the columns mirror `conveyor.job.JobRecord`.
--   seq               INTEGER PRIMARY KEY (the rowid): enqueue order, the last tie-breaker
--                     of the claim order and the order `query` lists jobs in (newest first).
--   priority          0 = high, 1 = normal, 2 = low (`conveyor.job.Priority`).
--   state             scheduled | ready | running | succeeded | dead | cancelled.
--   payload, result   BLOBs, exactly the bytes the app encoded.
--   headers           JSON text.
--   *_at              floats, seconds since the epoch on the backend's clock.
--   lease_token       the fencing token of the current lease (running jobs only).
--   attempt_log       JSON array: the attempts that ended without succeeding (failed, dead,
--                     lost), oldest first, the last `conveyor.attempts.KEEP` (migrate_5).
--   progress          JSON object: the latest progress report, with the attempt that made
--                     it (`conveyor.attempts.progress_json`; migrate_5).
-- {counters}  name → total, one row per name in `conveyor.backends.base.COUNTERS`.
-- {workers}   the live-worker registry; a row is live while expires_at > now.
-- {meta}      key → value; `schema_version` is the last migration step applied.
-- {leases}    name → owner and expiry: the scheduler's leader lease (migrate_3).
-- {schedules} cron/periodic entry name → the last tick enqueued (migrate_3).
-- {rate_starts} (key, started_at): one row per start a rate window granted (migrate_4).
-- {slots}     (key, holder) → expiry: held concurrency slots, free once expires_at <= now
--             (migrate_4).
-- {paused}    the names of paused queues; `claim` skips their jobs (migrate_4).
-- {history}   (minute, queue) → attempts that succeeded / failed in that minute (migrate_4).
--
-- Indexes, and why
-- ----------------
-- {jobs_claim} (state, priority, run_at): the claim query asks for state = 'ready' ordered
--   by (priority, run_at, seq). Every SQLite index entry ends with the rowid, so this index
--   already yields that exact order: the claim walks it from the front and stops after
--   LIMIT matching rows, with no sort. Routing filters (queue, task) are checked on the rows
--   it walks. Leading with queue would only help exact-name routing (not patterns), and
--   strict priority across several queues would then need a sort of every ready job.
-- {jobs_due} (run_at) WHERE state = 'scheduled': promoting due jobs and finding the next
--   due time (a claim waiting for work) touch only scheduled rows, earliest first.
-- {jobs_lease} (lease_expires_at) WHERE state = 'running': `recover` finds expired leases.
--   Queries name these two partial indexes with INDEXED BY: without ANALYZE statistics the
--   planner would rather use {jobs_claim}'s state prefix and walk every scheduled (or
--   running) job.
-- {jobs_unique} UNIQUE (unique_key) WHERE state IN ('scheduled', 'ready', 'running'): a
--   unique key is held only while its job is active; final states free it.
-- {rate_starts_key} (key, started_at): `rate_acquire` prunes and counts one key's window
--   in start order.
--
-- Damage
-- ------
-- SQLite types values, not columns: text can sit in a REAL column, a BLOB in a TEXT one,
-- and TEXT need not be UTF-8. Such a value sorts after every number, so a time that is
-- not a number is never "due" or "expired"; the queries find those with `>= ''` (a seek
-- to the end of an index) and treat them as due or expired. `rows.py` says which values a
-- job row may hold; a claim quarantines a job row that holds anything else.
--
-- Adding a column: SQLite has no ADD COLUMN IF NOT EXISTS, so `connection.migrate` skips an
-- ``ALTER TABLE ... ADD COLUMN`` whose column is already there, which keeps every step safe
-- to run again like the CREATE ... IF NOT EXISTS ones.

-- name: meta
CREATE TABLE IF NOT EXISTS {meta} (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- name: migrate_1
CREATE TABLE IF NOT EXISTS {jobs} (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL CHECK (priority IN (0, 1, 2)),
    state TEXT NOT NULL CHECK (
        state IN ('scheduled', 'ready', 'running', 'succeeded', 'dead', 'cancelled')
    ),
    payload BLOB NOT NULL,
    headers TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL,
    timeout REAL NOT NULL,
    run_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    unique_key TEXT,
    recoveries INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_expires_at REAL,
    worker_id TEXT,
    started_at REAL,
    finished_at REAL,
    last_error TEXT,
    traceback TEXT,
    result BLOB,
    failed_at REAL
);
CREATE INDEX IF NOT EXISTS {jobs_claim} ON {jobs} (state, priority, run_at);
CREATE INDEX IF NOT EXISTS {jobs_due} ON {jobs} (run_at) WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS {jobs_lease} ON {jobs} (lease_expires_at) WHERE state = 'running';
CREATE UNIQUE INDEX IF NOT EXISTS {jobs_unique} ON {jobs} (unique_key)
    WHERE state IN ('scheduled', 'ready', 'running');
CREATE TABLE IF NOT EXISTS {counters} (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT OR IGNORE INTO {counters} (name, value)
    VALUES ('fenced', 0), ('recovered', 0), ('poisoned', 0);
CREATE TABLE IF NOT EXISTS {workers} (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pool TEXT,
    queues TEXT,
    started_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    expires_at REAL NOT NULL,
    stats TEXT NOT NULL DEFAULT '{}'
);

-- name: migrate_2
-- {jobs_unique} held an entry for every active job, keyed or not: one more page written on
-- every enqueue and every state change. Most jobs have no unique key, so index only the
-- rows that have one; `active_with_key` (unique_key = ...) still uses the index, and the
-- uniqueness it enforces is the same, since NULL keys never conflicted.
DROP INDEX IF EXISTS {jobs_unique};
CREATE UNIQUE INDEX IF NOT EXISTS {jobs_unique} ON {jobs} (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'ready', 'running');

-- name: migrate_3
-- The scheduler's state. {leases}: named leader leases (name, holder, expiry on the
-- backend's clock); a lease is free once expires_at <= now. {schedules}: per cron or
-- periodic entry, the last tick enqueued (seconds since the epoch), which `enqueue_tick`
-- only ever moves forward, in the same transaction as the tick's job.
CREATE TABLE IF NOT EXISTS {leases} (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {schedules} (
    name TEXT PRIMARY KEY,
    last_tick REAL NOT NULL
) WITHOUT ROWID;

-- name: migrate_4
-- Limits and operations. {rate_starts}: a sliding window keeps each granted start (several
-- may share one instant, so no primary key); `rate_acquire` prunes a key's starts that left
-- the window. {slots}: concurrency slots that expire like leases. {paused}: a tiny table the
-- claim query reads once per claim (`queue NOT IN (SELECT queue FROM {paused})`).
-- {history}: per-minute counts, summed by upsert; `minute` is a multiple of 60.
CREATE TABLE IF NOT EXISTS {rate_starts} (
    key TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS {rate_starts_key} ON {rate_starts} (key, started_at);
CREATE TABLE IF NOT EXISTS {slots} (
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (key, holder)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {paused} (
    queue TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {history} (
    minute INTEGER NOT NULL,
    queue TEXT NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, queue)
) WITHOUT ROWID;

-- name: migrate_5
-- A job's story (`conveyor.attempts`): `fail` and `recover` append to attempt_log in the
-- same UPDATE as their state change; `report_progress` replaces progress. Both are NULL
-- until first written, so existing rows read as an empty log and no progress.
ALTER TABLE {jobs} ADD COLUMN attempt_log TEXT;
ALTER TABLE {jobs} ADD COLUMN progress TEXT;
