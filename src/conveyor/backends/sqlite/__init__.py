"""The SQLite backend: the embedded default, for one machine and several processes.

``sqlite:///conveyor.db`` (relative) or ``sqlite:////var/lib/app/conveyor.db`` (absolute);
``?synchronous=normal`` trades the last commits before a power cut for faster writes,
``?busy_timeout=<ms>`` sets how long a writer waits for the file (30 s by default), and
``?mode=rw`` opens only a file that exists (SQLite's name; the default ``rwc`` creates it).

Layout: `backend` (the core verbs), `runner` (the handle's thread and connections, which
every part shares: plain calls, group-committed writes, the sync connection and the wait
for work), `store` (each core verb as one transaction), `rows` (stored rows into records,
one field at a time, so a damaged row costs one job), `connection` (URL, pragmas, retries,
errors, migrations), `sql` (the loader for the ``.sql`` files, and the one list of table
names), `group_commit`, and one module with its own ``.sql`` file per capability: `admin`
(listing, repairing, pausing), `telemetry` (history, worker registry), `scheduling`
(leader lease, cron ticks), `limits` (rate windows, concurrency slots) and `progress` (a
running job's latest progress report).
"""

from __future__ import annotations

from conveyor.backends.sqlite.backend import SqliteBackend
from conveyor.backends.sqlite.connection import existing_only

__all__ = ["SqliteBackend", "existing_only"]
