-- Every query the PostgreSQL backend runs, as named blocks (`-- name: x`).
--
-- The data model and the indexes are described at the top of schema.sql. `{jobs}` and the
-- other names in braces are schema-qualified table names filled in by `sql.Queries`;
-- `{now}` is the one "now" expression (the injected clock's time, or the server's
-- statement_timestamp()); `{routing}` and `{filters}` are slots for clauses built at run
-- time, which only ever hold `%(name)s` parameters, never values.
--
-- Each statement is one transaction on an autocommit connection, and one round trip: a
-- state change and its counter bump or NOTIFY ride in the same statement as data-modifying
-- CTEs. "Held" below means: the job is running under exactly this lease token; a call on a
-- lease that is not held changes nothing but the `fenced` counter. Counters add in numeric
-- and saturate at the int8 maximum: a counter row damaged up to that value must not make
-- every statement that counts fail with "bigint out of range".

-- name: meta_exists
SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %(schema)s AND tablename = 'meta'
) AS present;

-- name: schema_version
SELECT value FROM {meta} WHERE key = 'schema_version';

-- name: set_schema_version
INSERT INTO {meta} (key, value) VALUES ('schema_version', %(version)s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: lock_schema
-- Held until the end of the creating or migrating transaction: one migrator at a time.
SELECT pg_advisory_xact_lock(hashtext('conveyor-migrate:' || %(schema)s));

-- name: enqueue
-- Insert a batch in order and return the ids stored. A job is due at its run_at (a time the
-- user gave), else at now + its delay (the server's now, never the producer's clock). A unique key already held by an active
-- job makes ON CONFLICT skip the row (the partial unique index is the arbiter, so concurrent
-- enqueues of one key wait for each other and exactly one wins); the caller then asks
-- `unique_holders` who holds it. One NOTIFY per statement names the queues that gained
-- ready jobs; it is delivered on commit, so a job enqueued inside a caller's transaction
-- wakes workers only if that commits. Keep this statement plain: the hot path of every
-- producer, it is simple enough that PostgreSQL's plan cache settles on one generic plan
-- instead of planning it afresh on every call, which costs more than running it.
WITH t AS (SELECT {now} AS now),
ins AS (
    INSERT INTO {jobs} AS j (
        id, task, queue, priority, state, payload, headers, max_retries, timeout, run_at,
        created_at, updated_at, unique_key
    )
    SELECT i.id, i.task, i.queue, i.priority,
           CASE WHEN coalesce(i.run_at, t.now + i.delay, t.now) > t.now
                THEN 'scheduled' ELSE 'ready' END,
           i.payload, i.headers::jsonb, i.max_retries, i.timeout,
           coalesce(i.run_at, t.now + i.delay, t.now), t.now, t.now, i.unique_key
    FROM unnest(
        %(ids)s::text[], %(tasks)s::text[], %(queues)s::text[], %(priorities)s::int2[],
        %(payloads)s::bytea[], %(headers)s::text[], %(max_retries)s::int4[],
        %(timeouts)s::float8[], %(run_ats)s::float8[], %(delays)s::float8[],
        %(unique_keys)s::text[]
    ) WITH ORDINALITY AS i (
        id, task, queue, priority, payload, headers, max_retries, timeout, run_at, delay,
        unique_key, ord
    ), t
    ORDER BY i.ord
    ON CONFLICT (unique_key) WHERE state IN ('scheduled', 'ready', 'running') DO NOTHING
    RETURNING j.id, j.queue, j.state
),
wake AS (
    SELECT pg_notify(%(channel)s, CASE WHEN length(q) > 7000 THEN '*' ELSE q END)
    FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM ins WHERE state = 'ready') s
    WHERE q IS NOT NULL AND %(channel)s::text IS NOT NULL
)
SELECT id, (SELECT count(*) FROM wake) AS notified FROM ins;

-- name: unique_holders
-- The active jobs holding these unique keys, as far as this statement's snapshot can see
-- (a key whose holder is not visible, or has finished meanwhile, is enqueued again).
SELECT unique_key, id FROM {jobs}
WHERE unique_key = ANY(%(keys)s::text[]) AND state IN ('scheduled', 'ready', 'running');

-- name: claim
-- Lease up to %(limit)s ready jobs in run order. The MATERIALIZED CTE is an optimisation
-- fence: the planner may otherwise re-run a LIMIT subquery per joined row and lock or
-- update more rows than LIMIT (PostgreSQL bug #15715, Oban's and QueueClassic's reports).
-- FOR UPDATE SKIP LOCKED under the LIMIT locks only the rows it returns and steps over rows
-- other claimers hold. When a scheduled job is already due, nothing is claimed and `due`
-- says so: the caller promotes due jobs (promote_due) and claims again, so a due job and a
-- ready one compete in one strict order, as the protocol requires. Paused queues' jobs are
-- stepped over: `NOT IN` on the tiny {paused} table is one hashed subplan, read once per
-- statement, and the pick still walks jobs_ready in order. (Due jobs of paused queues are
-- promoted like any other: they wait as ready jobs until the queue is resumed.)
-- Damaged rows (see records.py) must neither stop nor stall a claim: a scheduled run_at of
-- NaN or +Infinity counts as due (float8 sorts NaN above +Infinity, and `NaN <= now` is
-- false, so such a job would otherwise wait forever), so it is promoted, claimed and then
-- quarantined; an attempt count the integer cannot take one past is left as it is rather
-- than overflow and fail the whole statement.
WITH t AS (SELECT {now} AS now),
d AS (
    -- The two ends of jobs_scheduled, one index probe each (min and max read the first and
    -- last entry). `EXISTS (... run_at <= t.now)` looked like the same thing, but the
    -- planner cannot see t.now and guessed a third of the rows match: it scanned the table.
    SELECT coalesce(
        (SELECT min(run_at) FROM {jobs} WHERE state = 'scheduled') <= t.now
        OR (SELECT max(run_at) FROM {jobs} WHERE state = 'scheduled') >= 'Infinity',
        false
    ) AS due
    FROM t
),
pick AS MATERIALIZED (
    SELECT id FROM {jobs}
    WHERE state = 'ready' AND {routing} AND NOT (SELECT due FROM d)
      AND queue NOT IN (SELECT queue FROM {paused})
    ORDER BY priority, run_at, seq
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE {jobs} j
    SET state = 'running', lease_token = %(token)s,
        attempts = j.attempts + (j.attempts >= 0 AND j.attempts < 2147483647)::int,
        lease_expires_at = t.now + %(lease)s, worker_id = %(worker_id)s,
        started_at = t.now, updated_at = t.now
    FROM pick, t
    WHERE j.id = pick.id
    RETURNING j.*
)
SELECT d.due, c.* FROM d LEFT JOIN claimed c ON true;

-- name: quarantine
-- Jobs this claim leased (%(token)s) whose rows cannot be read go to dead at once, with
-- the reason in last_error (`unreadable.unreadable_error`). Every other column stays as
-- stored, for `conveyor jobs show` and repair; finished_at is set so retention prunes it.
WITH t AS (SELECT {now} AS now)
UPDATE {jobs} j
SET state = 'dead', last_error = u.error, failed_at = t.now, finished_at = t.now,
    updated_at = t.now, lease_token = NULL, lease_expires_at = NULL
FROM t, unnest(%(ids)s::text[], %(errors)s::text[]) AS u (id, error)
WHERE j.id = u.id AND j.state = 'running' AND j.lease_token = %(token)s;

-- name: promote_due
-- Every due scheduled job becomes ready, whatever the caller's routing. SKIP LOCKED: two
-- claimers promoting at once split the rows instead of queueing on each other's locks.
-- "Due" is exactly the claim's `d` test (a NaN or infinite run_at is due), or a claim
-- would keep finding due jobs that this never promotes.
WITH t AS (SELECT {now} AS now),
due AS (
    SELECT s.id FROM {jobs} s, t
    WHERE s.state = 'scheduled' AND s.run_at <= t.now
    FOR UPDATE OF s SKIP LOCKED
),
odd AS (
    SELECT s.id FROM {jobs} s
    WHERE s.state = 'scheduled' AND s.run_at >= 'Infinity'
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE {jobs} j SET state = 'ready', updated_at = t.now
FROM (SELECT id FROM due UNION ALL SELECT id FROM odd) p, t
WHERE j.id = p.id;

-- name: extend
-- Push each held lease to now + %(lease)s; returns the ids still held.
WITH t AS (SELECT {now} AS now),
held AS (
    UPDATE {jobs} j SET lease_expires_at = t.now + %(lease)s
    FROM t, unnest(%(ids)s::text[], %(tokens)s::text[]) AS l (id, token)
    WHERE j.id = l.id AND j.state = 'running' AND j.lease_token = l.token
    RETURNING j.id
),
fenced AS (
    UPDATE {counters}
    SET value = least(
        value::numeric + cardinality(%(ids)s::text[]) - (SELECT count(*) FROM held),
        9223372036854775807
    )::int8
    WHERE name = 'fenced' AND (SELECT count(*) FROM held) < cardinality(%(ids)s::text[])
)
SELECT id FROM held;

-- name: complete
-- Mark held jobs succeeded with their results: a batch, one row per lease (see
-- batching.py); returns the (id, token) pairs that were held. Only the current token can
-- match a job's row, so a stale and a current lease of one job in the same batch each get
-- their own answer.
WITH t AS (SELECT {now} AS now),
done AS (
    UPDATE {jobs} j
    SET state = 'succeeded', result = l.result, updated_at = t.now, finished_at = t.now,
        lease_token = NULL, lease_expires_at = NULL
    FROM t, unnest(%(ids)s::text[], %(tokens)s::text[], %(results)s::bytea[])
        AS l (id, token, result)
    WHERE j.id = l.id AND j.state = 'running' AND j.lease_token = l.token
    RETURNING j.id, l.token
),
fenced AS (
    UPDATE {counters}
    SET value = least(
        value::numeric + cardinality(%(ids)s::text[]) - (SELECT count(*) FROM done),
        9223372036854775807
    )::int8
    WHERE name = 'fenced' AND (SELECT count(*) FROM done) < cardinality(%(ids)s::text[])
)
SELECT id, token FROM done;

-- name: fail
-- A held job is scheduled again at now + %(retry_in)s seconds (the same "now" as its lease,
-- never the worker's clock), or dead when that is NULL. A retry wakes idle workers so they
-- take the new due time into account. The attempt goes into the job's attempt log
-- (`failed`, or `dead`), with its error and traceback as cut by `attempts.entry_texts`
-- (%(entry_error)s, %(entry_traceback)s); last_error and traceback keep them whole. The
-- log is kept to its last %(keep)s entries by a jsonpath slice (lax mode: a log shorter
-- than that is kept whole); NULL, or anything but an array (damage), starts a new log.
WITH t AS (SELECT {now} AS now),
done AS (
    UPDATE {jobs} j
    SET state = CASE WHEN %(retry_in)s::float8 IS NULL THEN 'dead' ELSE 'scheduled' END,
        run_at = coalesce(t.now + %(retry_in)s::float8, j.run_at),
        last_error = %(error)s, traceback = %(traceback)s,
        attempt_log = jsonb_path_query_array(
            CASE WHEN jsonb_typeof(j.attempt_log) = 'array' THEN j.attempt_log
                 ELSE '[]' END
            || jsonb_build_array(jsonb_build_object(
                'attempt', j.attempts,
                'outcome', CASE WHEN %(retry_in)s::float8 IS NULL THEN 'dead' ELSE 'failed' END,
                'worker_id', j.worker_id, 'started_at', j.started_at, 'ended_at', t.now,
                'error', %(entry_error)s::text, 'traceback', %(entry_traceback)s::text
            )),
            '$[last - $keep + 1 to last]', jsonb_build_object('keep', %(keep)s::int)
        ),
        failed_at = CASE WHEN %(retry_in)s::float8 IS NULL THEN t.now ELSE j.failed_at END,
        finished_at = CASE WHEN %(retry_in)s::float8 IS NULL THEN t.now ELSE j.finished_at END,
        updated_at = t.now, lease_token = NULL, lease_expires_at = NULL
    FROM t
    WHERE j.id = %(id)s AND j.state = 'running' AND j.lease_token = %(token)s
    RETURNING j.queue, j.state
),
fenced AS (
    UPDATE {counters} SET value = least(value::numeric + 1, 9223372036854775807)::int8
    WHERE name = 'fenced' AND NOT EXISTS (SELECT 1 FROM done)
),
wake AS (
    SELECT pg_notify(%(channel)s, queue) FROM done
    WHERE state = 'scheduled' AND %(channel)s::text IS NOT NULL
)
SELECT count(*) AS held, (SELECT count(*) FROM wake) AS notified FROM done;

-- name: release
-- A held job goes back to ready at once and gets its attempt back (graceful shutdown).
WITH t AS (SELECT {now} AS now),
done AS (
    UPDATE {jobs} j
    SET state = 'ready', attempts = j.attempts - 1, updated_at = t.now,
        lease_token = NULL, lease_expires_at = NULL
    FROM t
    WHERE j.id = %(id)s AND j.state = 'running' AND j.lease_token = %(token)s
    RETURNING j.queue
),
fenced AS (
    UPDATE {counters} SET value = least(value::numeric + 1, 9223372036854775807)::int8
    WHERE name = 'fenced' AND NOT EXISTS (SELECT 1 FROM done)
),
wake AS (
    SELECT pg_notify(%(channel)s, queue) FROM done WHERE %(channel)s::text IS NOT NULL
)
SELECT count(*) AS held, (SELECT count(*) FROM wake) AS notified FROM done;

-- name: defer
-- A held job waits again without using an attempt: scheduled at now + %(delay)s (ready at
-- once when the delay is not positive), its attempt given back, its headers replaced when
-- %(headers)s is given. It stays active, so it keeps its unique key. Wakes idle workers so
-- they take the job (or its new due time) into account.
WITH t AS (SELECT {now} AS now),
done AS (
    UPDATE {jobs} j
    SET state = CASE WHEN %(delay)s::float8 > 0 THEN 'scheduled' ELSE 'ready' END,
        run_at = t.now + greatest(%(delay)s::float8, 0), attempts = j.attempts - 1,
        headers = coalesce(%(headers)s::jsonb, j.headers), updated_at = t.now,
        lease_token = NULL, lease_expires_at = NULL
    FROM t
    WHERE j.id = %(id)s AND j.state = 'running' AND j.lease_token = %(token)s
    RETURNING j.queue
),
fenced AS (
    UPDATE {counters} SET value = least(value::numeric + 1, 9223372036854775807)::int8
    WHERE name = 'fenced' AND NOT EXISTS (SELECT 1 FROM done)
),
wake AS (
    SELECT pg_notify(%(channel)s, queue) FROM done WHERE %(channel)s::text IS NOT NULL
)
SELECT count(*) AS held, (SELECT count(*) FROM wake) AS notified FROM done;

-- name: recover
-- Expired leases go back to ready (one more recovery, the attempt given back), or to dead
-- as a poison pill once recoveries reach %(max_recoveries)s. Safe from many workers at
-- once: SKIP LOCKED splits the rows between concurrent reapers, and a row another reaper
-- (or the job's own worker) changed meanwhile is re-checked against the WHERE clause
-- before it is touched. %(reason)s carries a marker that becomes the recovery count.
-- Each expired lease, poison pills included, adds a `lost` attempt to the job's log: its
-- number before the attempt is given back, the job's worker and start, now as its end and
-- %(lost_error)s (kept to %(keep)s entries and started afresh as `fail` does).
-- Damaged rows cannot stop the reaper: a running job without a lease expiry, or with a NaN
-- or infinite one, counts as expired; counts are computed in int8 and saturate instead of
-- overflowing (an error here would fail every recovery, not one).
WITH t AS (SELECT {now} AS now),
expired AS MATERIALIZED (
    SELECT r.id FROM {jobs} r, t
    WHERE r.state = 'running' AND (
        r.lease_expires_at <= t.now OR r.lease_expires_at IS NULL
        OR r.lease_expires_at >= 'Infinity'
    )
    FOR UPDATE OF r SKIP LOCKED
),
done AS (
    UPDATE {jobs} j
    SET state = CASE WHEN j.recoveries::int8 + 1 >= %(max_recoveries)s
            THEN 'dead' ELSE 'ready' END,
        recoveries = j.recoveries + (j.recoveries < 2147483647)::int,
        attempts = j.attempts - (j.attempts > -2147483648)::int,
        last_error = CASE WHEN j.recoveries::int8 + 1 >= %(max_recoveries)s
            THEN replace(%(reason)s, %(marker)s, (j.recoveries::int8 + 1)::text)
            ELSE j.last_error END,
        failed_at = CASE WHEN j.recoveries::int8 + 1 >= %(max_recoveries)s
            THEN t.now ELSE j.failed_at END,
        finished_at = CASE WHEN j.recoveries::int8 + 1 >= %(max_recoveries)s
            THEN t.now ELSE j.finished_at END,
        attempt_log = jsonb_path_query_array(
            CASE WHEN jsonb_typeof(j.attempt_log) = 'array' THEN j.attempt_log
                 ELSE '[]' END
            || jsonb_build_array(jsonb_build_object(
                'attempt', j.attempts, 'outcome', 'lost',
                'worker_id', j.worker_id, 'started_at', j.started_at, 'ended_at', t.now,
                'error', %(lost_error)s::text, 'traceback', NULL
            )),
            '$[last - $keep + 1 to last]', jsonb_build_object('keep', %(keep)s::int)
        ),
        updated_at = t.now, lease_token = NULL, lease_expires_at = NULL
    FROM expired e, t
    WHERE j.id = e.id
    RETURNING j.queue, j.state
),
counted AS (
    UPDATE {counters} c SET value = least(c.value::numeric + n.n, 9223372036854775807)::int8
    FROM (
        SELECT CASE WHEN state = 'dead' THEN 'poisoned' ELSE 'recovered' END AS name,
               count(*) AS n
        FROM done GROUP BY 1
    ) n
    WHERE c.name = n.name
),
wake AS (
    SELECT pg_notify(%(channel)s, q)
    FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM done WHERE state = 'ready') s
    WHERE q IS NOT NULL AND %(channel)s::text IS NOT NULL
)
SELECT count(*) FILTER (WHERE state = 'ready') AS recovered,
       count(*) FILTER (WHERE state = 'dead') AS dead,
       (SELECT count(*) FROM wake) AS notified
FROM done;

-- name: probe
-- Is matching work ready now, and in how many seconds is the next matching scheduled job
-- due (<= 0: due already; NULL: none)? Served by jobs_ready and jobs_scheduled. Jobs of
-- paused queues do not count, or an idle worker would spin on work it may not claim.
WITH t AS (SELECT {now} AS now)
SELECT EXISTS (
           SELECT 1 FROM {jobs}
           WHERE state = 'ready' AND {routing} AND queue NOT IN (SELECT queue FROM {paused})
       ) AS ready,
       (SELECT min(run_at) FROM {jobs}
        WHERE state = 'scheduled' AND {routing}
          AND queue NOT IN (SELECT queue FROM {paused})) - t.now AS due_in
FROM t;

-- name: get
SELECT * FROM {jobs} WHERE id = %(id)s;

-- name: query
SELECT * FROM {jobs}
WHERE {filters}
ORDER BY seq DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: stats
-- Due scheduled jobs count as ready: they are claimable now (due as the claim decides, so
-- a NaN or infinite run_at counts too). A full scan: status reads.
WITH t AS (SELECT {now} AS now)
SELECT queue, priority,
       CASE WHEN state = 'scheduled' AND (run_at <= t.now OR run_at >= 'Infinity')
            THEN 'ready' ELSE state END AS st,
       count(*) AS n
FROM {jobs}, t
GROUP BY 1, 2, 3;

-- name: counters
SELECT name, value FROM {counters};

-- name: retry_dead
-- Dead jobs (all, or those in %(ids)s) back to ready with fresh attempts. A job whose unique
-- key an active job holds stays dead (retrying it would run the work twice), and of several
-- dead jobs sharing a key only the oldest comes back.
WITH t AS (SELECT {now} AS now),
cand AS MATERIALIZED (
    SELECT c.id, c.seq, c.unique_key FROM {jobs} c
    WHERE c.state = 'dead' AND (%(ids)s::text[] IS NULL OR c.id = ANY(%(ids)s::text[]))
    FOR UPDATE OF c
),
pick AS (
    SELECT id FROM cand WHERE unique_key IS NULL
    UNION ALL
    SELECT * FROM (
        SELECT DISTINCT ON (unique_key) id FROM cand c
        WHERE unique_key IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM {jobs} a
            WHERE a.unique_key = c.unique_key AND a.state IN ('scheduled', 'ready', 'running')
        )
        ORDER BY unique_key, seq
    ) k
),
done AS (
    UPDATE {jobs} j
    SET state = 'ready', attempts = 0, recoveries = 0, run_at = t.now, finished_at = NULL,
        updated_at = t.now, lease_token = NULL, lease_expires_at = NULL
    FROM pick, t
    WHERE j.id = pick.id
    RETURNING j.queue
),
wake AS (
    SELECT pg_notify(%(channel)s, q)
    FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM done) s
    WHERE q IS NOT NULL AND %(channel)s::text IS NOT NULL
)
SELECT count(*) AS retried, (SELECT count(*) FROM wake) AS notified FROM done;

-- name: cancel
WITH t AS (SELECT {now} AS now)
UPDATE {jobs} j
SET state = 'cancelled', updated_at = t.now, finished_at = t.now,
    lease_token = NULL, lease_expires_at = NULL
FROM t
WHERE j.id = %(id)s AND j.state IN ('scheduled', 'ready', 'running');

-- name: purge_before
-- Retention: delete up to %(batch)s jobs that finished over %(older_than)s seconds before
-- now (the server's now: an age, never the caller's clock), using jobs_finished.
-- Small batches keep each transaction short, so pruning never holds back vacuum itself;
-- SKIP LOCKED lets several workers prune at once without waiting on each other.
WITH doomed AS (
    SELECT d.id FROM {jobs} d
    WHERE d.state = ANY(%(states)s::text[])
      AND d.finished_at < {now} - %(older_than)s::float8
    LIMIT %(batch)s
    FOR UPDATE OF d SKIP LOCKED
)
DELETE FROM {jobs} j USING doomed WHERE j.id = doomed.id;

-- name: purge_all
WITH doomed AS (
    SELECT d.id FROM {jobs} d
    WHERE d.state = ANY(%(states)s::text[])
    LIMIT %(batch)s
    FOR UPDATE OF d SKIP LOCKED
)
DELETE FROM {jobs} j USING doomed WHERE j.id = doomed.id;

-- name: register_worker
-- Drop expired rows, then upsert this worker; an upsert keeps its `registered` number (and
-- so its place in the listing) while it stays live. A NaN or infinite expiry (damage: a
-- registration never lasts forever) counts as expired, or the row would stay forever.
WITH t AS (SELECT {now} AS now),
gone AS (
    DELETE FROM {workers} w USING t WHERE w.expires_at <= t.now OR w.expires_at >= 'Infinity'
)
INSERT INTO {workers} (id, host, pid, pool, queues, started_at, last_seen, expires_at, stats)
SELECT %(id)s, %(host)s, %(pid)s, %(pool)s, %(queues)s::text[], %(started_at)s, t.now,
       t.now + %(ttl)s, %(stats)s::jsonb
FROM t
ON CONFLICT (id) DO UPDATE SET
    host = excluded.host, pid = excluded.pid, pool = excluded.pool, queues = excluded.queues,
    started_at = excluded.started_at, last_seen = excluded.last_seen,
    expires_at = excluded.expires_at, stats = excluded.stats;

-- name: unregister_worker
DELETE FROM {workers} WHERE id = %(id)s;

-- name: workers
-- Live rows only: `NaN > now` is true in PostgreSQL, so the upper bound keeps a damaged
-- expiry from listing a worker forever (register_worker deletes such rows).
WITH t AS (SELECT {now} AS now)
SELECT w.* FROM {workers} w, t
WHERE w.expires_at > t.now AND w.expires_at < 'Infinity'
ORDER BY w.registered;

-- name: long_transactions
-- Sessions whose transaction has been open longer than %(seconds)s: while one is open,
-- VACUUM cannot remove the dead rows every claim and ack leaves behind, and claims slow
-- down as they wade through them (research/reliability.md, "MVCC bloat").
SELECT pid, usename, datname, state, backend_xmin IS NOT NULL AS holds_xmin,
       extract(epoch FROM now() - xact_start)::float8 AS seconds,
       left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS query
FROM pg_stat_activity
WHERE xact_start IS NOT NULL
  AND xact_start < now() - make_interval(secs => %(seconds)s)
  AND pid <> pg_backend_pid()
ORDER BY xact_start
LIMIT 10;

-- name: old_prepared_transactions
-- Prepared (two-phase) transactions pin the xmin horizon too, and outlive sessions.
SELECT gid, database, extract(epoch FROM now() - prepared)::float8 AS seconds
FROM pg_prepared_xacts
WHERE prepared < now() - make_interval(secs => %(seconds)s)
ORDER BY prepared
LIMIT 10;

-- name: dead_tuples
-- How far autovacuum is behind on the jobs table.
SELECT n_live_tup, n_dead_tup,
       extract(epoch FROM now() - greatest(last_autovacuum, last_vacuum))::float8
           AS since_vacuum
FROM pg_stat_user_tables
WHERE schemaname = %(schema)s AND relname = 'jobs';
