"""Reaching PostgreSQL: the URL and its options, connection pools, and clear errors.

The URL is a libpq URL plus Conveyor's own query options, which are taken out before the
rest goes to libpq (so ``sslmode=require`` and friends still work):

``schema``          the schema holding Conveyor's tables (default ``conveyor``)
``listen``          ``false`` turns LISTEN/NOTIFY off: idle workers poll instead (PgBouncer
                    in transaction mode cannot deliver notifications)
``prepare``         ``false`` turns off server-side prepared statements (PgBouncer before
                    1.21 in transaction mode)
``pool_size``       connections in a worker's async pool (default 10)
``pool_timeout``    seconds to wait for a free pooled connection (default 10)
``poll_interval``   seconds between polls when not listening (default 0.1)
``long_transaction``  seconds after which an open transaction is reported (default 300)
``connect_timeout`` libpq's own option, defaulted to 5 seconds here
"""

from __future__ import annotations

import select
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import PoolTimeout

from conveyor.backends.postgres import sql
from conveyor.errors import BackendError, BackendUnavailable, ConfigError, SchemaVersionError
from conveyor.redaction import redact_url

DEFAULT_SCHEMA = "conveyor"
DEFAULT_CONNECT_TIMEOUT = 5
_BOOL = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


@dataclass(slots=True, frozen=True)
class Target:
    """Where the database is and how Conveyor uses it, parsed from a ``postgresql://`` URL."""

    conninfo: str = field(repr=False)  # holds the password
    schema: str = DEFAULT_SCHEMA
    listen: bool = True
    prepare: bool = True
    pool_size: int = 10
    pool_timeout: float = 10.0
    poll_interval: float = 0.1
    long_transaction: float = 300.0
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT

    @property
    def where(self) -> str:
        """Host, port, database and schema, without credentials: safe in messages."""
        parts = urlsplit(self.conninfo)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        return f"{host}{port}{parts.path or '/'} (schema {self.schema})"

    @property
    def channel(self) -> str:
        """The NOTIFY channel of this schema's jobs."""
        return f"conveyor:{self.schema}"

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for every connection Conveyor opens itself."""
        return {
            "autocommit": True,
            "prepare_threshold": 5 if self.prepare else None,
        }


def _number(key: str, value: str, url: str, *, integer: bool = False) -> float:
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        number = -1
    if number <= 0:
        raise ConfigError(
            f"option {key}={value!r} in the PostgreSQL URL {redact_url(url)!r} must be > 0"
        )
    return number


def _flag(key: str, value: str, url: str) -> bool:
    if value.lower() not in _BOOL:
        raise ConfigError(
            f"option {key}={value!r} in the PostgreSQL URL {redact_url(url)!r} must be true "
            "or false"
        )
    return _BOOL[value.lower()]


def parse_url(url: str) -> Target:
    """Split a ``postgresql://`` URL into libpq's part and Conveyor's options."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigError(f"{redact_url(url)!r} is not a postgresql:// URL")
    options: dict[str, Any] = {}
    libpq: list[tuple[str, str]] = []
    connect_timeout = DEFAULT_CONNECT_TIMEOUT
    # libpq URIs decode %XX only and take "+" literally; parse_qsl would turn "+" into a
    # space, so protect it, and re-encode with quote (spaces as %20), not quote_plus.
    for key, value in parse_qsl(parts.query.replace("+", "%2B"), keep_blank_values=True):
        if key == "schema":
            if not sql.SCHEMA_NAME.match(value):
                raise ConfigError(
                    f"schema={value!r} in the PostgreSQL URL is not a plain name: use "
                    "lower-case letters, digits and '_' (at most 63), e.g. schema=conveyor"
                )
            options["schema"] = value
        elif key in ("listen", "prepare"):
            options[key] = _flag(key, value, url)
        elif key == "pool_size":
            options[key] = int(_number(key, value, url, integer=True))
        elif key in ("pool_timeout", "poll_interval", "long_transaction"):
            options[key] = _number(key, value, url)
        elif key == "connect_timeout":
            connect_timeout = int(_number(key, value, url, integer=True))
        else:
            libpq.append((key, value))
    libpq.append(("connect_timeout", str(connect_timeout)))
    query = urlencode(libpq, quote_via=quote)  # options=-c%20x%3Dy keeps its space
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, query, ""))
    return Target(conninfo, connect_timeout=connect_timeout, **options)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the server could not be reached (rather than a bad statement)."""
    return isinstance(exc, (psycopg.OperationalError, PoolTimeout, OSError)) and not isinstance(
        exc, psycopg.errors.QueryCanceled
    )


def translate(exc: BaseException, target: Target) -> BackendError:
    """A Conveyor error for a driver error, naming the server and what to do."""
    if isinstance(exc, BackendError):
        return exc
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return SchemaVersionError(
            f"Conveyor's tables are missing from PostgreSQL at {target.where}: {text}. "
            "Run `conveyor migrate` to create them"
        )
    if is_connection_error(exc):
        return BackendUnavailable(
            f"PostgreSQL at {target.where} is unavailable: {text}. Check that the server is "
            "running and reachable, and that CONVEYOR_URL names it"
        )
    return BackendError(f"PostgreSQL error at {target.where}: {text}")


def looks_closed(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection was closed by the server, without a round trip.

    An idle connection has nothing to read; once the server restarts (or an admin kills the
    session) its socket turns readable with the goodbye message or EOF. Checking that costs
    one non-blocking ``select``, where a ``SELECT 1`` per checkout would double the round
    trips of every call.
    """
    if conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return True
    return bool(readable)
