"""The ``connection=`` option (transactional enqueue) on a backend that cannot join a
database transaction: a clear error, and nothing stored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conveyor import ConfigError, Conveyor
from conveyor.job import JobQuery
from conveyor.testing import eager


def stored(app: Conveyor) -> int:
    return len(asyncio.run(app.backend.admin.query(JobQuery(limit=100))))


def test_sync_enqueue_with_a_connection_is_refused_on_memory(app: Conveyor) -> None:
    @app.task
    def send(to: str) -> None: ...

    with pytest.raises(ConfigError, match=r"needs the PostgreSQL backend.*memory://"):
        send.options(connection=object()).enqueue("a@example.com")
    assert stored(app) == 0


async def test_async_enqueue_with_a_connection_is_refused_on_memory(app: Conveyor) -> None:
    @app.task
    async def send(to: str) -> None: ...

    with pytest.raises(ConfigError, match="transactional enqueue"):
        await send.options(connection=object()).enqueue_async("a@example.com")
    with pytest.raises(ConfigError, match="transactional enqueue"):
        await app.enqueue_many_async([send.call("b")], connection=object())
    assert len(await app.backend.admin.query(JobQuery())) == 0


def test_enqueue_many_takes_the_connection_of_its_calls_or_its_own(app: Conveyor) -> None:
    @app.task
    def send(to: str) -> None: ...

    with pytest.raises(ConfigError, match="transactional enqueue"):
        app.enqueue_many([send.options(connection=object()).call("a")])
    with pytest.raises(ConfigError, match="transactional enqueue"):
        app.enqueue_many([send.call("a")], connection=object())
    assert stored(app) == 0


def test_calls_naming_different_connections_cannot_share_a_batch(app: Conveyor) -> None:
    @app.task
    def send(to: str) -> None: ...

    calls = [send.options(connection=object()).call(to) for to in ("a", "b")]
    with pytest.raises(ConfigError, match="different connections"):
        app.enqueue_many(calls)


def test_the_connection_option_does_not_change_equality_or_repr(app: Conveyor) -> None:
    @app.task
    def send(to: str) -> None: ...

    secret = object()
    bound = send.options(connection=secret, delay=5)
    assert bound.opts == send.options(delay=5).opts
    assert "object" not in repr(bound.opts)
    assert bound.options(priority="high").opts.connection is secret


def test_eager_mode_runs_the_job_at_once_without_the_connection(app: Conveyor) -> None:
    ran: list[str] = []

    @app.task
    def send(to: str) -> None:
        ran.append(to)

    with eager(app):
        send.options(connection=object()).enqueue("a@example.com")
    assert ran == ["a@example.com"]


def test_on_commit_without_an_integration_is_refused(app: Conveyor) -> None:
    @app.task
    def send(to: str) -> None: ...

    with pytest.raises(ConfigError, match=r"on_commit=True.*conveyor\.contrib\.django"):
        send.options(on_commit=True).enqueue("a@example.com")
    assert stored(app) == 0


def test_on_commit_goes_through_the_commit_hook(app: Conveyor) -> None:
    from conveyor.app.enqueueing import set_commit_hook

    @app.task
    def send(to: str) -> None: ...

    pending: list[Any] = []
    previous = set_commit_hook(lambda _app, jobs, store: pending.append((jobs, store)))
    try:
        handle = send.options(on_commit=True).enqueue("a@example.com")
        # Nothing is stored until the hook's transaction commits
        assert stored(app) == 0
        [(jobs, store)] = pending
        assert [j.id for j in jobs] == [handle.id]
        store(None)  # the commit
        assert stored(app) == 1
        assert asyncio.run(app.backend.get(handle.id)) is not None
        # A call cannot both name a connection and ask for the hook, nor mix in a batch
        with pytest.raises(ConfigError, match="not both"):
            send.options(on_commit=True, connection=object()).enqueue("b")
        with pytest.raises(ConfigError, match="not both"):
            app.enqueue_many([send.options(on_commit=True).call("b")], connection=object())
        with pytest.raises(ConfigError, match="mixes"):
            app.enqueue_many([send.options(on_commit=True).call("c"), send.call("d")])
        assert stored(app) == 1
    finally:
        set_commit_hook(previous)
