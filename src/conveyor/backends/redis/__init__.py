"""The Redis backend: the distributed default (``redis://``, ``rediss://``).

``redis://[[user]:password@]host:6379/0?prefix=conveyor`` — ``prefix`` names the store
(default ``conveyor``); other query options go to redis-py (``socket_timeout``, ...).

Every state change is one Lua script (the ``.lua`` files beside this module, each with a
header listing its keys and arguments), so a job is in exactly one state at any time.

Key layout, all under one hash tag so every script's keys live in one Cluster slot::

  {P}:job:<id>          HASH  one job: id task queue priority state payload headers
                              attempts max_retries timeout run_at created_at updated_at
                              unique_key recoveries lease_token lease_expires_at worker_id
                              started_at finished_at last_error traceback result failed_at
                              seq (enqueue order); once written, attempt_log (JSON array
                              of the attempts that did not succeed, the last
                              attempts.KEEP: fail.lua, recover.lua) and progress (JSON of
                              the latest report: progress.lua). enqueue.lua leaves out id,
                              attempts, recoveries, updated_at, empty headers, the
                              default max_retries and timeout and, for a job to run now,
                              run_at (codec.DEFAULTS: the key's id, 0, 0, created_at, {},
                              3, 300.0, created_at); a payload of positional arguments
                              only is kept as its bare argument array in an args field
                              in place of payload (codec.bare_args)
  {P}:seq               STRING enqueue counter (FIFO across queues)
  {P}:all:<bucket>      ZSET  seq -> id: the job index for newest-first queries, in
                              buckets of 128 seqs (small ZSETs stay compact listpacks);
                              a job waiting in a fifo: LIST joins it when it leaves the
                              LIST, and query.lua merges both
  {P}:buckets           ZSET  bucket -> bucket: the buckets in use
  {P}:all               ZSET  seq -> id: the index of a store made before the buckets
                              (moved into them by the first query)
  {P}:fifo:<lane>       LIST  ids of one lane's jobs enqueued to run now, in enqueue
                              order (their run_at and seq grow along it), where
                              lane = <priority digit><len(queue)>:<queue><task>
  {P}:ready:<lane>      ZSET  run_at -> %016x(seq)<id>: the lane's other ready jobs (due,
                              released, recovered, retried); claim takes from both parts
                              in (run_at, seq) order
  {P}:lanes             SET   the non-empty lanes (claim matches routing against these,
                              so glob patterns see queues created later)
  {P}:scheduled         ZSET  run_at -> id: delayed jobs and retries, promoted by claim
  {P}:leases            ZSET  lease expiry, rounded up to a second -> id: running jobs, swept
                              by recover (the record keeps the exact expiry)
  {P}:done:<state>      ZSET  finished_at -> id for succeeded / dead / cancelled (purge)
  {P}:unique            HASH  unique key -> id of the active job holding it
  {P}:counts            HASH  "<state>:<priority>:<queue>" -> jobs (stats)
  {P}:counters          HASH  fenced / recovered / poisoned
  {P}:waiters           HASH  parked worker -> routing + deadline (park.lua)
  {P}:wake:<waiter>     LIST  wake-up tokens a parked worker BLPOPs
  {P}:workers           HASH  worker id -> "<last_seen>|<JSON info>"
  {P}:workers:expiry    ZSET  drop-off time -> worker id
  {P}:locks             HASH  lease name -> "<owner>|<expiry>" (scheduler leader lease)
  {P}:schedules         HASH  schedule entry name -> last tick enqueued
  {P}:paused            SET   paused queues (claim and park skip their lanes)
  {P}:rate:<key>        ZSET  start time -> random member: one rate limit's window
  {P}:slots:<key>       ZSET  holder -> expiry: one concurrency limit's slots
  {P}:history           ZSET  minute -> minute: stored throughput minutes (pruning)
  {P}:history:<minute>  HASH  "s<queue>" -> succeeded, "f<queue>" -> failed attempts

Modules: `backend` (the core verbs), its parts `limits` (rate windows, slots),
`scheduling` (leader lease, ticks), `admin` (listing, counts, repairs, pause),
`telemetry` (history, worker registry) and `progress` (a running job's latest report),
all sharing one `connection.RedisConnection` (clients, clock, scripts, errors,
persistence warning); `claiming` (claim, park and the pipelined claim behind the pop),
`producing` (enqueue batches), `quarantine` (claimed records that cannot be read), `keys`
(names, URL, routing for Lua), `codec` (records), `scripts` (loader). ``docs/redis.md``
has the operator's view.
"""

from __future__ import annotations

from conveyor.backends.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
