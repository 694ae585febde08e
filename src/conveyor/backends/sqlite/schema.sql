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
-- {counters}  name → total, one row per name in `conveyor.backends.base.COUNTERS`.
-- {workers}   the live-worker registry; a row is live while expires_at > now.
-- {meta}      key → value; `schema_version` is the last migration step applied.
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
--   due time (wait_for_work) touch only scheduled rows, earliest first.
-- {jobs_lease} (lease_expires_at) WHERE state = 'running': `recover` finds expired leases.
--   Queries name these two partial indexes with INDEXED BY: without ANALYZE statistics the
--   planner would rather use {jobs_claim}'s state prefix and walk every scheduled (or
--   running) job.
-- {jobs_unique} UNIQUE (unique_key) WHERE state IN ('scheduled', 'ready', 'running'): a
--   unique key is held only while its job is active; final states free it.

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
