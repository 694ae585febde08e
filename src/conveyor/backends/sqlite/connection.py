"""Opening a SQLite file for Conveyor: the URL, the pragmas, write transactions, retries on a
busy file, clear errors, and the forward-only schema migrations.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from conveyor.backends.sqlfiles import migration_steps, newer_schema
from conveyor.backends.sqlite import rows, sql
from conveyor.errors import BackendError, BackendUnavailable, ConfigError, SchemaVersionError

T = TypeVar("T")

#: How long SQLite itself waits on a locked file before giving up (per attempt).
DEFAULT_BUSY_TIMEOUT_MS = 30_000
#: Further attempts when "database is locked" still surfaces (e.g. while WAL is switched on).
LOCKED_RETRIES = 5

_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "extra": "EXTRA"}
#: ``mode=`` in the URL, as SQLite's URI filenames name it → whether a missing file is made.
_MODES = {"rw": False, "rwc": True}
_MIGRATIONS = [
    (number, sql.load("schema.sql")[name])
    for number, name in migration_steps(sql.load("schema.sql"), "schema.sql")
]
#: The schema version this code writes: the number of migration steps.
SCHEMA_VERSION = len(_MIGRATIONS)
#: ``ALTER TABLE t ADD COLUMN c ...`` (after any comment lines): the table and the column.
_ADD_COLUMN = re.compile(
    r"\A(?:\s*--[^\n]*\n)*\s*ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s+(\w+)", re.IGNORECASE
)


@dataclass(slots=True, frozen=True)
class Target:
    """Where the database file is and how to open it, parsed from a ``sqlite://`` URL."""

    path: Path
    synchronous: str = "FULL"
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    #: ``False`` for ``?mode=rw``: open only a file that exists, never create it (nor its
    #: directory), so a command pointed at the wrong path says so instead of making a store.
    create: bool = True


def parse_url(url: str) -> Target:
    """Read ``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` (``?synchronous=normal``,
    ``?mode=rw`` to never create the file: SQLite's own name for it)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise ConfigError(f"{url!r} is not a sqlite:// URL")
    if parts.netloc:
        raise ConfigError(
            f"SQLite URL {url!r} names a host ({parts.netloc!r}); use three slashes for a "
            "relative path (sqlite:///conveyor.db) or four for an absolute one "
            "(sqlite:////var/lib/app/conveyor.db)"
        )
    raw = unquote(parts.path)[1:]  # drop the slash that separates the empty host
    if raw in ("", ":memory:") or raw.startswith("file:"):
        raise ConfigError(
            f"SQLite URL {url!r} does not name a database file; an in-memory SQLite store "
            "cannot be shared between workers: use memory:// for tests, or "
            "sqlite:///path/to/conveyor.db"
        )
    synchronous, busy, create = "FULL", DEFAULT_BUSY_TIMEOUT_MS, True
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "synchronous" and value.lower() in _SYNCHRONOUS:
            synchronous = _SYNCHRONOUS[value.lower()]
        elif key == "busy_timeout" and value.isdigit():
            busy = int(value)
        elif key == "mode" and value.lower() in _MODES:
            create = _MODES[value.lower()]
        else:
            raise ConfigError(
                f"unsupported option {key}={value!r} in SQLite URL {url!r}: use "
                "synchronous=full|normal|extra, busy_timeout=<milliseconds> or mode=rw|rwc"
            )
    return Target(Path(raw).absolute(), synchronous, busy, create)


def existing_only(url: str) -> str:
    """``url`` with ``mode=rw`` added, so opening it never creates a missing file.

    For commands that read or repair a store (``conveyor status``, ``jobs list``): run in
    the wrong directory, they must say the file is missing, not report an empty new one. A
    URL that already names a mode keeps it.
    """
    if any(key == "mode" for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)):
        return url
    return f"{url}{'&' if '?' in url else '?'}mode=rw"


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def translate(exc: sqlite3.Error, path: Path) -> BackendError:
    """A Conveyor error for a driver error, naming the file and what to do."""
    text = str(exc)
    low = text.lower()
    if _is_busy(exc):
        return BackendUnavailable(
            f"the SQLite database {path} stayed locked ({text}) after {LOCKED_RETRIES} tries: "
            "another process holds a long write transaction; raise busy_timeout in the URL "
            "(sqlite:///...?busy_timeout=60000) or use Redis/PostgreSQL for heavy loads"
        )
    if any(s in low for s in ("unable to open", "readonly", "disk i/o", "not a database")):
        return BackendUnavailable(
            f"cannot use the SQLite database {path}: {text}. Check that the path is a file "
            "(not a directory) in a directory this process can write, or set CONVEYOR_URL "
            "to another sqlite:///path.db"
        )
    return BackendError(f"SQLite error on {path}: {text}")


def retrying(fn: Callable[[], T]) -> T:
    """Run ``fn``, trying again with a short jittered backoff while the file is locked."""
    for attempt in range(LOCKED_RETRIES):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or attempt == LOCKED_RETRIES - 1:
                raise
            jitter = 0.5 + random.random()  # noqa: S311 - spreads retries, not a secret
            time.sleep(min(0.5, 0.02 * 2**attempt) * jitter)
    raise AssertionError("unreachable")


def write(conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
    """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction (retried as a whole when locked).

    Taking the write lock up front means a transaction never has to upgrade a read lock,
    which in WAL mode fails at once with "database is locked" instead of waiting.
    """

    def attempt() -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    return retrying(attempt)


def connect(target: Target, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open the file with Conveyor's pragmas and bring its schema up to date.

    A missing file (and its directory) is created, unless ``target.create`` is off.
    """
    path = target.path
    if not target.create and not path.exists():
        raise missing_store(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackendUnavailable(
            f"cannot create the directory {path.parent} for the SQLite database {path}: "
            f"{exc.strerror or exc}. Create it by hand, or set CONVEYOR_URL to a writable path"
        ) from exc
    if path.is_dir():
        raise BackendUnavailable(
            f"the SQLite database path {path} is a directory; name a file inside it, "
            f"e.g. sqlite:///{path / 'conveyor.db'}"
        )
    try:
        conn = sqlite3.connect(
            path,
            timeout=target.busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc
    try:
        _setup(conn, target)
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def missing_store(path: Path) -> ConfigError:
    """The error for a store file that is not there and must not be created (``mode=rw``)."""
    return ConfigError(
        f"no Conveyor store at {path}: the SQLite file does not exist (a relative "
        "sqlite:/// path is read from the current directory). Check --url / CONVEYOR_URL, "
        "or create the store with `conveyor migrate` or by starting a worker"
    )


def _setup(conn: sqlite3.Connection, target: Target) -> None:
    conn.row_factory = sqlite3.Row
    # TEXT whose bytes are not UTF-8 would fail the whole fetch (and so every claim that
    # meets it); read it as surrogates instead and let `rows` decide per record.
    conn.text_factory = rows.text_factory
    conn.execute(f"PRAGMA busy_timeout = {int(target.busy_timeout_ms)}")
    # Switching to WAL needs a moment of exclusive access, so it can report "locked" while
    # other processes open the same new file; the mode then sticks to the file.
    retrying(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
    conn.execute(f"PRAGMA synchronous = {target.synchronous}")
    migrate(conn, target.path)


def schema_version(conn: sqlite3.Connection) -> int:
    """The version recorded in the file; 0 for a file Conveyor has not set up yet."""
    if conn.execute(sql.query("meta_exists"), {"name": sql.NAMES["meta"]}).fetchone() is None:
        return 0
    row = conn.execute(sql.query("schema_version")).fetchone()
    if row is None:
        return 0
    if not (rows.is_text(row[0]) and row[0].isdigit()):
        # Guessing could apply a migration twice or skip one: stop, and say what to fix.
        raise SchemaVersionError(
            f"the schema version recorded in {sql.NAMES['meta']} is damaged "
            f"({rows.shown(row[0])!r} is not a version number); restore the file from a "
            "backup, or set it to the number of the last migration step applied"
        )
    return int(row[0])


def _check_not_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise newer_schema(f"the SQLite database {path}", version, SCHEMA_VERSION)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the missing forward-only steps; safe when several processes start at once."""
    version = retrying(lambda: schema_version(conn))
    _check_not_newer(version, path)
    if version == SCHEMA_VERSION:
        return

    def steps() -> None:
        # Read again under the write lock: another process may have migrated meanwhile.
        for statement in sql.statements(sql.load("schema.sql")["meta"]):
            conn.execute(statement)
        current = schema_version(conn)
        _check_not_newer(current, path)
        for number, body in _MIGRATIONS[current:]:
            for statement in sql.statements(body):
                _apply(conn, statement)
            conn.execute(sql.query("set_schema_version"), {"version": str(number)})

    write(conn, steps)


def _apply(conn: sqlite3.Connection, statement: str) -> None:
    """Run one migration statement; an ADD COLUMN whose column exists is already applied.

    SQLite has no ``ADD COLUMN IF NOT EXISTS``: this keeps such a step as safe to run again
    as the ``CREATE ... IF NOT EXISTS`` ones (a version number set back by hand, say).
    """
    added = _ADD_COLUMN.match(statement)
    if added is not None:
        table, column = added.groups()
        # Names come from schema.sql (filled from `sql.NAMES`), never from input.
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column in columns:
            return
    conn.execute(statement)
