"""The SQLite backend: the embedded default, for one machine and several processes.

``sqlite:///conveyor.db`` (relative) or ``sqlite:////var/lib/app/conveyor.db`` (absolute);
``?synchronous=normal`` trades the last commits before a power cut for faster writes, and
``?busy_timeout=<ms>`` sets how long a writer waits for the file (30 s by default).

Layout: `backend` (the async surface and its thread), `store` (each operation as one
transaction), `rows` (stored rows into records, one field at a time, so a damaged row
costs one job), `connection` (URL, pragmas, retries, errors, migrations), `sql` (the loader
for ``schema.sql`` and ``queries.sql``, and the one list of table names), `group_commit`,
and one module (with its own ``.sql`` file) per further part of the protocol: `scheduling`,
`limits` (rate windows, concurrency slots) and `operations` (pause, delete, history).
"""

from __future__ import annotations

from conveyor.backends.sqlite.backend import SqliteBackend

__all__ = ["SqliteBackend"]
