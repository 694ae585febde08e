-- Forward-only migrations of Conveyor's PostgreSQL schema.
--
-- Each `-- name: migrate_N` block takes a store from schema version N-1 to N. `conveyor
-- migrate` runs the missing steps in order, in one transaction, under an advisory lock (so
-- two migrating processes apply each step once), and records the version in {meta}. A
-- worker never migrates on its own: started against an older version it stops and says to
-- run `conveyor migrate`. Never edit a released step: add a new one, and change the
-- `create` block of schema.sql to match (tests/integration/test_postgres.py proves that a
-- migrated store equals a fresh one, column by column and index by index).

-- name: migrate_1
-- The first layout: jobs, counters, workers and meta, with the claim, schedule, running
-- and unique indexes.
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {meta} (
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
    failed_at double precision
);
CREATE INDEX jobs_ready ON {jobs} (priority, run_at, seq) WHERE state = 'ready';
CREATE INDEX jobs_scheduled ON {jobs} (run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_running ON {jobs} (worker_id) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_unique ON {jobs} (unique_key)
    WHERE state IN ('scheduled', 'ready', 'running');
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

-- name: migrate_2
-- Retention: an index for pruning finished jobs, room for HOT lease extensions, and an
-- autovacuum that keeps up with a queue's churn. CREATE INDEX (not CONCURRENTLY: migrations
-- run in a transaction) briefly blocks writes to the jobs table; run it when it is quiet.
CREATE INDEX jobs_finished ON {jobs} (finished_at)
    WHERE state IN ('succeeded', 'dead', 'cancelled');
ALTER TABLE {jobs} SET (
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);

-- name: migrate_3
-- The scheduler's state: named leader leases (free once expires_at <= now on the backend's
-- clock), and per cron or periodic entry the last tick enqueued, which `enqueue_tick` only
-- moves forward, in the same transaction as the tick's job.
CREATE TABLE {leases} (
    name text PRIMARY KEY,
    owner text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE TABLE {schedules} (
    name text PRIMARY KEY,
    last_tick double precision NOT NULL
);

-- name: migrate_4
-- Limits and operations: rate windows and concurrency slots (one row per key, locked by
-- every call on it), paused queues (a tiny table the claim checks), and per-minute
-- throughput history. New tables only: no rewrite of the jobs table, no long lock.
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

-- name: migrate_5
-- A job's story: `attempt_log`, the attempts that ended without succeeding (a JSON array of
-- `conveyor.attempts.log_entry` objects, the last KEEP kept), and `progress`, the latest
-- report of its task (`conveyor.attempts.progress_json`). Nullable columns without a
-- default: adding them changes only the catalog, with no rewrite of the jobs table.
ALTER TABLE {jobs} ADD COLUMN attempt_log jsonb, ADD COLUMN progress jsonb;
