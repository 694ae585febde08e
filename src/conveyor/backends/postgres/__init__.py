"""The PostgreSQL backend: jobs in the database a team already runs.

``postgresql://user:password@host:5432/db?schema=conveyor`` (psycopg 3 and psycopg_pool:
``pip install 'conveyor[postgres]'``). Claims use ``FOR UPDATE SKIP LOCKED`` and take
several jobs per round trip; idle workers wake on LISTEN/NOTIFY; jobs can be enqueued inside
the application's own transaction (``task.options(connection=conn).enqueue(...)``); the
schema is created and upgraded by ``conveyor migrate``. URL options: see `connection`.
docs/postgres.md covers setup, migrations, PgBouncer, pruning and vacuum.

Layout: `backend` (the protocol's hot path), `admin` (reads, repairs, registry, health),
`limits` (rate windows and concurrency slots), `operations` (pause/resume, delete, oldest
wait, throughput history), `scheduling` (leader lease and cron ticks),
`pools` (connections and outage handling), `connection` (URL, errors), `listener`
(LISTEN/NOTIFY), `batching` (group commit of acks), `records` (rows to records, damaged
ones included), `rows` (enqueue bookkeeping), `transactional` (the caller's connections),
`migrations` and `sql` (the loader for ``schema.sql``, ``migrations.sql``, ``queries.sql``
and the other ``.sql`` files).
"""

from __future__ import annotations

from conveyor.backends.postgres.backend import PostgresBackend

__all__ = ["PostgresBackend"]
