-- Rate windows and concurrency slots for the PostgreSQL backend (`-- name: x` blocks).
--
-- Tables (schema.sql, migrate_4):
--   {rates}  key text PK, starts float8[] (sorted start times), wait float8: one row per
--            sliding window. `wait` is the answer to the last call (0: granted), stored
--            because RETURNING sees only the row as the statement left it.
--   {slots}  key text PK, holders jsonb (holder → expiry): one row per semaphore; a holder
--            whose expiry is <= now holds nothing.
-- Damage (a row written by hand or by another program) must cost that key at most its
-- history, never every later call: a NaN or infinite start leaves the window, holders
-- that are not a JSON object count as none, and a holder whose expiry is not a number, or
-- one no float can hold, has expired (compared as numeric, which never fails to cast).
-- `{now}` is the backend's clock (see sql.NOW).
--
-- Atomicity: every call is one INSERT ... ON CONFLICT DO UPDATE on the key's row. The
-- conflicting row is locked, and the SET expressions read its latest committed version
-- (not the statement's snapshot), so concurrent callers of one key, from any connection
-- or process, queue on that row lock and each sees the previous caller's result: a window
-- or a semaphore can never over-grant. Different keys never wait for each other. A first
-- call on a new key inserts; racing first calls meet on the primary key and all but one
-- take the update branch.

-- name: rate_acquire
-- Take one start from the window %(key)s (%(limit)s starts per %(period)s seconds): drop
-- starts that left the window, then either append now (wait 0) or, when %(limit)s starts
-- are still inside it, record nothing and answer the seconds until the oldest of the
-- last %(limit)s starts leaves. No row comes back when %(limit)s < 1 (never granted).
WITH t AS (SELECT {now} AS now)
INSERT INTO {rates} AS r (key, starts, wait)
SELECT %(key)s, ARRAY[t.now], 0 FROM t
WHERE %(limit)s::int >= 1
ON CONFLICT (key) DO UPDATE SET (starts, wait) = (
    SELECT CASE WHEN w.n < %(limit)s::int THEN w.live || t.now ELSE w.live END,
           CASE WHEN w.n < %(limit)s::int THEN 0::float8
                ELSE greatest(w.live[w.n - %(limit)s::int + 1] + %(period)s::float8 - t.now,
                              1e-6)
           END
    FROM (SELECT {now} AS now) t, LATERAL (
        SELECT coalesce(array_agg(s ORDER BY s), '{}') AS live, count(*)::int AS n
        FROM unnest(r.starts) AS s
        WHERE s > t.now - %(period)s::float8 AND s < 'Infinity'
    ) w
)
RETURNING r.wait;

-- name: slot_acquire
-- Hold one of %(limit)s slots of %(key)s until now + %(ttl)s: drop expired holders, then
-- take or renew %(holder)s's slot when it already holds one or one is free. Returns whether
-- %(holder)s holds a slot now (no row when %(limit)s < 1).
WITH t AS (SELECT {now} AS now)
INSERT INTO {slots} AS s (key, holders)
SELECT %(key)s, jsonb_build_object(%(holder)s::text, t.now + %(ttl)s::float8) FROM t
WHERE %(limit)s::int >= 1
ON CONFLICT (key) DO UPDATE SET holders = (
    SELECT CASE WHEN h.live ? %(holder)s::text OR h.n < %(limit)s::int
                THEN h.live || jsonb_build_object(%(holder)s::text, t.now + %(ttl)s::float8)
                ELSE h.live
           END
    FROM (SELECT {now} AS now) t, LATERAL (
        SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') AS live, count(*)::int AS n
        FROM jsonb_each(CASE WHEN jsonb_typeof(s.holders) = 'object'
                             THEN s.holders ELSE '{}' END) AS e
        WHERE CASE WHEN jsonb_typeof(e.value) = 'number'
                   THEN (e.value)::numeric > t.now::numeric AND (e.value)::numeric < 1e308
              END
    ) h
)
RETURNING s.holders ? %(holder)s::text AS held;

-- name: slot_release
-- Free %(holder)s's slot of %(key)s. The key's row goes when no other holder is left, so
-- per-account keys do not pile up; otherwise only this holder is removed.
WITH gone AS (
    DELETE FROM {slots}
    WHERE key = %(key)s AND CASE WHEN jsonb_typeof(holders) = 'object'
                                 THEN holders - %(holder)s::text = '{}'::jsonb END
    RETURNING key
)
UPDATE {slots} SET holders = holders - %(holder)s::text
WHERE key = %(key)s AND jsonb_typeof(holders) = 'object' AND holders ? %(holder)s::text
  AND NOT EXISTS (SELECT 1 FROM gone);
