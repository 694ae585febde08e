"""The PostgreSQL backend: jobs in the database a team already runs.

``postgresql://user:password@host:5432/db?schema=conveyor`` (psycopg 3 and psycopg_pool:
``pip install 'conveyor[postgres]'``). Claims use ``FOR UPDATE SKIP LOCKED`` and take
several jobs per round trip; idle workers wake on LISTEN/NOTIFY; jobs can be enqueued inside
the application's own transaction (``task.options(connection=conn).enqueue(...)``); the
schema is created and upgraded by ``conveyor migrate``. URL options: see `connection`.
docs/postgres.md covers setup, migrations, PgBouncer, pruning and vacuum.

Layout: `backend` (the core verbs) and `claims` (claiming and waiting for work) beside the
capability parts `limits` (rate windows and concurrency slots), `scheduling` (leader lease
and cron ticks), `admin` (reads, repairs, pruning, pausing, health), `telemetry` (history
and the worker registry), `transactional` (the caller's connections) and `progress` (a
running job's latest report), all sharing one `database.Database` handle (pools, clock,
listener, statement runners). Below them: `pools` (connections and outage handling),
`connection` (URL, errors), `listener` (LISTEN/NOTIFY), `records` (rows to records, damaged
ones included), `rows` (the enqueue statement's bookkeeping), `migrations` and `sql` (the
loader for ``schema.sql``, ``migrations.sql``, ``queries.sql`` and the other ``.sql``
files). Acks share statements
through `conveyor.backends.batching`.
"""

from __future__ import annotations

from conveyor.backends.postgres.backend import PostgresBackend

__all__ = ["PostgresBackend"]
