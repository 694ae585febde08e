"""Backends, chosen by URL scheme. Drivers are imported only when their scheme is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.backends.base import Backend

SCHEMES = ("memory", "sqlite", "redis", "rediss", "postgresql", "postgres")


def create_backend(url: str, *, clock: Clock = SYSTEM_CLOCK) -> Backend:
    """Build the backend for ``url`` (not yet opened)."""
    from conveyor.redaction import redact_url

    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigError(
            f"backend URL {redact_url(url)!r} has no scheme: use memory://, sqlite:///path.db, "
            "redis://host:6379/0 or postgresql://user@host/db (set CONVEYOR_URL)"
        )
    scheme = scheme.lower()
    if scheme == "memory":
        from conveyor.backends.memory import MemoryBackend

        return MemoryBackend(url, clock=clock)
    if scheme == "sqlite":
        from conveyor.backends.sqlite import SqliteBackend

        return SqliteBackend(url, clock=clock)
    if scheme in ("postgresql", "postgres"):
        try:
            from conveyor.backends.postgres import PostgresBackend
        except ImportError as exc:
            raise ConfigError(
                f"the postgresql:// backend needs psycopg 3 and its pool ({exc}): "
                "pip install 'conveyor[postgres]'"
            ) from None
        return PostgresBackend(url, clock=clock)
    if scheme in ("redis", "rediss"):
        from conveyor.backends.redis import RedisBackend

        return RedisBackend(url, clock=clock)
    if scheme in SCHEMES:
        raise ConfigError(
            f"the {scheme}:// backend is not available in this version of Conveyor yet; "
            "use sqlite:///path.db (the embedded default) or memory://"
        )
    raise ConfigError(
        f"unknown backend scheme {scheme!r} in {redact_url(url)!r}: use one of "
        "memory://, sqlite:///path.db, redis://, postgresql://"
    )
