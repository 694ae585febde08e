-- Conveyor's PostgreSQL schema, as a brand-new store gets it (the current version).
--
-- `conveyor migrate` (or the first `open()` of an empty schema) runs the `create` block in
-- one transaction. A store made by an older Conveyor is brought here by the steps in
-- migrations.sql instead, and a test proves both roads end at the same schema. Everything
-- lives in one schema of its own ({schema}: `?schema=` in the URL, default `conveyor`), so it
-- never collides with the application's tables and a test can drop it in one statement.
--
-- Data model
-- ----------
-- {jobs}      one row per job; the columns mirror `conveyor.job.JobRecord`.
--   id                the job id (text, made by the producer); the primary key.
--   seq               enqueue order: the last tie-breaker of the claim order and the order
--                     `query` lists jobs in (newest first).
--   priority          0 = high, 1 = normal, 2 = low (`conveyor.job.Priority`).
--   state             scheduled | ready | running | succeeded | dead | cancelled.
--   payload, result   bytea: exactly the bytes the app encoded.
--   headers           jsonb.
--   attempt_log       jsonb, NULL until an attempt ends without succeeding: an array of
--                     `conveyor.attempts.log_entry` objects, oldest first, the last
--                     `conveyor.attempts.KEEP` kept (fail and recover append, in the
--                     statement that changes the state). The success is not logged.
--   progress          jsonb, the task's latest report (`conveyor.attempts.progress_json`,
--                     with the attempt that made it); NULL until one is made.
--   *_at              float8 seconds since the epoch on the backend's clock (the server's
--                     `statement_timestamp()` unless a clock is injected): exact round trips
--                     of the floats the other backends store, and cheap arithmetic.
--   lease_token       the fencing token of the current lease (running jobs only).
-- {counters}  name → total, one row per name in `conveyor.backends.base.COUNTERS`.
-- {workers}   the live-worker registry; a row is live while expires_at > now.
-- {meta}      key → value; `schema_version` is the last migration step applied.
-- {leases}    name → owner and expiry: the scheduler's leader lease.
-- {schedules} cron/periodic entry name → the last tick enqueued.
-- {rates}     rate-limit key → the sorted start times still inside its window (`starts`),
--             and `wait`, the answer to the last `rate_acquire` (0: granted): one row per
--             key, so its row lock serialises concurrent callers (see limits.sql).
-- {slots}     concurrency-limit key → `holders`, a jsonb object holder → slot expiry.
-- {paused}    the paused queues (queue → when it was paused); `claim` skips their jobs.
-- {history}   (minute, queue) → succeeded and failed attempts finished in that minute.
--
-- Indexes, and why
-- ----------------
-- Every state change rewrites a job's row, and a rewrite that is not HOT adds an entry to
-- every index whose key or predicate it touches, so the table has few full indexes and
-- small partial ones that hold only the rows one query needs.
-- {jobs} primary key (id): every per-job call (complete, fail, extend, get) is by id.
-- jobs_ready (priority, run_at, seq) WHERE state = 'ready': the claim query asks for
--   ready jobs ordered by (priority, run_at, seq) with LIMIT n FOR UPDATE SKIP LOCKED; it
--   walks this index from the front, skips rows other workers hold, and stops after n
--   matches: no sort, and the index holds only the ready backlog. Routing (queue, task) is
--   checked on the rows it walks; leading with queue would help exact names only, and strict
--   priority across several queues would then need a sort of every ready job.
-- jobs_scheduled (run_at) WHERE state = 'scheduled': promoting due jobs and finding the next
--   due time (a waiting claim's `probe`) read only scheduled rows, earliest first.
-- jobs_running (worker_id) WHERE state = 'running': `recover` scans running jobs for expired
--   leases. The lease expiry itself is deliberately not indexed: heartbeats rewrite it for
--   every running job, and with no index on it (and fillfactor room on the page) those
--   updates are HOT and add no index entries at all.
-- jobs_unique UNIQUE (unique_key) WHERE state IN ('scheduled', 'ready', 'running'): a key is
--   held only while its job is active; enqueue uses it as its ON CONFLICT arbiter, so 50
--   concurrent enqueues of one key store exactly one job.
-- jobs_finished (finished_at) WHERE state IN ('succeeded', 'dead', 'cancelled'): retention
--   pruning deletes the oldest finished jobs in batches without scanning live ones.
-- There is deliberately no index on seq: `query` (the CLI's job listing) sorts its matches.
--
-- Storage: fillfactor 85 leaves room for HOT lease extensions; autovacuum runs after 2% of
-- the rows changed (the default 20% lets a busy queue table bloat for minutes).

-- name: create
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE {meta} (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE {jobs} (
    id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    task text NOT NULL,
    queue text NOT NULL,
    priority smallint NOT NULL CHECK (priority IN (0, 1, 2)),
    state text NOT NULL CHECK (
        state IN ('scheduled', 'ready', 'running', 'succeeded', 'dead', 'cancelled')
    ),
    payload bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}',
    attempts integer NOT NULL DEFAULT 0,
    max_retries integer NOT NULL,
    timeout double precision NOT NULL,
    run_at double precision NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    unique_key text,
    recoveries integer NOT NULL DEFAULT 0,
    lease_token text,
    lease_expires_at double precision,
    worker_id text,
    started_at double precision,
    finished_at double precision,
    last_error text,
    traceback text,
    result bytea,
    failed_at double precision,
    attempt_log jsonb,
    progress jsonb
) WITH (
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
CREATE INDEX jobs_ready ON {jobs} (priority, run_at, seq) WHERE state = 'ready';
CREATE INDEX jobs_scheduled ON {jobs} (run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_running ON {jobs} (worker_id) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_unique ON {jobs} (unique_key)
    WHERE state IN ('scheduled', 'ready', 'running');
CREATE INDEX jobs_finished ON {jobs} (finished_at)
    WHERE state IN ('succeeded', 'dead', 'cancelled');
CREATE TABLE {counters} (
    name text PRIMARY KEY,
    value bigint NOT NULL DEFAULT 0
);
INSERT INTO {counters} (name, value) VALUES ('fenced', 0), ('recovered', 0), ('poisoned', 0);
CREATE TABLE {workers} (
    id text PRIMARY KEY,
    registered bigint GENERATED ALWAYS AS IDENTITY,
    host text NOT NULL,
    pid integer NOT NULL,
    pool text,
    queues text[],
    started_at double precision NOT NULL,
    last_seen double precision NOT NULL,
    expires_at double precision NOT NULL,
    stats jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE {leases} (
    name text PRIMARY KEY,
    owner text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE TABLE {schedules} (
    name text PRIMARY KEY,
    last_tick double precision NOT NULL
);
CREATE TABLE {rates} (
    key text PRIMARY KEY,
    starts double precision[] NOT NULL,
    wait double precision NOT NULL DEFAULT 0
);
CREATE TABLE {slots} (
    key text PRIMARY KEY,
    holders jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE {paused} (
    queue text PRIMARY KEY,
    paused_at double precision NOT NULL
);
CREATE TABLE {history} (
    minute bigint NOT NULL,
    queue text NOT NULL,
    succeeded bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, queue)
);
