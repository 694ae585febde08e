"""Shared by the SQLite integration tests: a plain job, a file's URL, an opened handle."""

from __future__ import annotations

from pathlib import Path

from conveyor.backends.sqlite import SqliteBackend
from conveyor.job import NewJob, Priority


def job(queue: str = "q", **fields: object) -> NewJob:
    """A job of task ``t`` on ``queue`` (``q``), with any further `NewJob` fields."""
    return NewJob(
        task="t",
        queue=queue,
        priority=Priority.NORMAL,
        payload=b"[]",
        max_retries=0,
        timeout=5.0,
        **fields,  # type: ignore[arg-type]
    )


def url_for(path: Path, query: str = "") -> str:
    """The ``sqlite:///`` URL of ``path``, with an optional ``?query``."""
    return f"sqlite:///{path}{query}"


async def opened(path: Path) -> SqliteBackend:
    """A handle on ``path``, opened (file created, schema migrated)."""
    backend = SqliteBackend(url_for(path))
    await backend.open()
    return backend
