"""Enqueueing batches on Redis: a batch travels as runs of jobs that share their options
(each job then costs two script arguments), a sync batch of more than 1,000 jobs as several
script calls in one pipeline. Every job keeps its own options and order, a retried or
repeated id is stored once, a batch with a bad call stores nothing, and a server that lost
its scripts or a dropped connection mid-pipeline still ends with every job stored once."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis.connection
from redis import Redis
from tests.contract.support import server_url

from conveyor import Conveyor
from conveyor.backends.redis import RedisBackend, producing
from conveyor.errors import SerializationError
from conveyor.job import JobRecord, Priority, State
from conveyor.serialization import decode_payload
from conveyor.task import BadArguments

from .damage_redis_support import job
from .redis_server import RedisServer


def make_app(url: str) -> tuple[Conveyor, Any, Any]:
    app = Conveyor(f"{url}?prefix=runs-{os.urandom(6).hex()}")

    @app.task(name="runs.add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    @app.task(name="runs.mail", queue="mail", priority="high", retries=5)
    def mail(to: str) -> None: ...

    return app, add, mail


@pytest.fixture
def redis_app() -> Iterator[tuple[Conveyor, Any, Any]]:
    app, add, mail = make_app(server_url("redis"))
    try:
        yield app, add, mail
    finally:
        app.close()


def args_of(record: JobRecord) -> list[Any]:
    return decode_payload(record.payload)[0]


def indexed_ids(raw: Redis, backend: RedisBackend) -> list[bytes]:
    """Every stored job id, in enqueue order (their records' seq)."""
    base = backend.keys.job("")
    keys = list(raw.scan_iter(match=base + "*", count=1000))
    seqs = [int(raw.hget(key, "seq") or 0) for key in keys]
    return [key[len(base) :] for _, key in sorted(zip(seqs, keys, strict=True))]


def stored_ids(app: Conveyor) -> list[bytes]:
    """Every stored job id, in enqueue order."""
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    with Redis.from_url(server_url("redis")) as raw:
        return indexed_ids(raw, backend)


def test_a_big_sync_batch_is_stored_whole_and_in_order(
    redis_app: tuple[Conveyor, Any, Any],
) -> None:
    app, add, _ = redis_app
    # Given a batch big enough to go out as several script calls in one pipeline
    count = 2 * producing.ENQUEUE_CHUNK + 7
    handles = add.enqueue_many([(n,) for n in range(count)])
    # Then every job is stored under its own id, in the order of the calls
    assert [h.id.encode() for h in handles] == stored_ids(app)
    assert len({h.id for h in handles}) == count and not any(h.existing for h in handles)
    first, last = handles[0].info(), handles[-1].info()
    assert (args_of(first), args_of(last)) == ([0], [count - 1])
    assert first.state is State.READY and last.queue == "default"


def test_every_job_of_a_mixed_batch_keeps_its_own_options(
    redis_app: tuple[Conveyor, Any, Any],
) -> None:
    app, add, mail = redis_app
    # Given one batch of calls of two tasks with different options, interleaved
    later = add.options(delay=3600, headers={"tenant": "acme"})
    specs = [
        add.call(1),
        add.call(2, b=3),
        mail.call("a@example.com"),
        later.call(4),
        later.call(5),
        add.options(unique_key="only-one").call(6),
        add.options(unique_key="only-one").call(7),
        mail.options(priority="low", retries=0).call("b@example.com"),
        add.call(8),
    ]
    handles = app.enqueue_many(specs)
    records = [h.info() for h in handles]
    # Then each job is stored with its own task, queue, priority, retries, time and headers
    assert [(r.task, r.queue, r.priority, r.max_retries) for r in records] == [
        ("runs.add", "default", Priority.NORMAL, 3),
        ("runs.add", "default", Priority.NORMAL, 3),
        ("runs.mail", "mail", Priority.HIGH, 5),
        ("runs.add", "default", Priority.NORMAL, 3),
        ("runs.add", "default", Priority.NORMAL, 3),
        ("runs.add", "default", Priority.NORMAL, 3),
        ("runs.add", "default", Priority.NORMAL, 3),
        ("runs.mail", "mail", Priority.LOW, 0),
        ("runs.add", "default", Priority.NORMAL, 3),
    ]
    assert [args_of(r) for r in records] == [
        [1],
        [2],
        ["a@example.com"],
        [4],
        [5],
        [6],
        [6],
        ["b@example.com"],
        [8],
    ]
    assert decode_payload(records[1].payload)[1] == {"b": 3}
    assert [r.state for r in records[3:5]] == [State.SCHEDULED, State.SCHEDULED]
    assert records[3].headers == {"tenant": "acme"} and records[0].headers == {}
    # and the second call with the same unique key points at the first one's job
    assert handles[6].existing and handles[6].id == handles[5].id
    assert len(stored_ids(app)) == 8


SINGLE_CALLS = {
    "bare args": lambda add, mail: add.call(1),
    "kwargs": lambda add, mail: add.call(2, b=3),
    "options": lambda add, mail: mail.options(retries=0, timeout=7.5).call("a@example.com"),
    "headers": lambda add, mail: add.options(headers={"tenant": "acme"}).call(4),
}


@pytest.mark.parametrize("make", SINGLE_CALLS.values(), ids=SINGLE_CALLS.keys())
def test_a_single_job_is_stored_as_the_same_job_in_a_batch(
    redis_app: tuple[Conveyor, Any, Any], make: Any
) -> None:
    app, add, mail = redis_app
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    raw = Redis.from_url(server_url("redis"))
    # Given the same call enqueued alone (enqueue.lua's short path) and in a batch of two
    [alone] = app.enqueue_many([make(add, mail)])
    pair = app.enqueue_many([make(add, mail), make(add, mail)])

    def stored(job_id: str) -> dict[bytes, bytes]:
        fields = raw.hgetall(backend.keys.job(job_id))
        for name in (b"seq", b"created_at"):  # the job's own, whichever path stored it
            assert fields.pop(name)
        return fields

    # Then its record holds the very same fields and values
    assert stored(alone.id) == stored(pair[0].id) == stored(pair[1].id)
    # and it waits in the same lane, counted once per job, in enqueue order
    seqs = [int(raw.hget(backend.keys.job(h.id), "seq") or 0) for h in [alone, *pair]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    counts = {k.decode(): int(v) for k, v in raw.hgetall(backend.keys.counts).items()}
    assert sum(v for k, v in counts.items() if k.startswith("ready:")) == 3
    records = [h.info() for h in [alone, *pair]]
    assert {(r.state, r.run_at == r.created_at) for r in records} == {(State.READY, True)}
    raw.close()


def test_a_retried_single_enqueue_is_stored_once(redis_app: tuple[Conveyor, Any, Any]) -> None:
    app, _, _ = redis_app
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    # Given one job sent twice (a retry after a lost reply)
    one = job(1)
    [first] = backend.enqueue_sync([one])
    [again] = backend.enqueue_sync([one])
    # Then the second time it is reported as the one already stored, and stored once
    assert not first.existing and (again.id, again.existing) == (one.id, True)
    assert len(stored_ids(app)) == 1


def test_a_repeated_id_is_stored_once(redis_app: tuple[Conveyor, Any, Any]) -> None:
    app, _, _ = redis_app
    backend = app.backend
    # Given a batch sent twice (a retry after a lost reply), big enough to be pipelined
    jobs = [job(n) for n in range(2 * producing.ENQUEUE_CHUNK)]
    first = backend.enqueue_sync(jobs)
    again = backend.enqueue_sync(jobs)
    # Then the second time every job is reported as the one already stored
    assert not any(r.existing for r in first)
    assert [(r.id, r.existing) for r in again] == [(j.id, True) for j in jobs]
    # And an id given twice in one batch is stored once
    twice = job(99)
    results = backend.enqueue_sync([twice, job(100), twice])
    assert [r.existing for r in results] == [False, False, True]
    assert len(stored_ids(app)) == len(jobs) + 2


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (((1,), {"c": 2}), BadArguments),
        (((math.nan,), {}), SerializationError),
    ],
)
def test_a_batch_with_one_bad_call_stores_nothing(
    redis_app: tuple[Conveyor, Any, Any],
    bad: tuple[tuple[Any, ...], dict[str, Any]],
    error: type[Exception],
) -> None:
    app, add, _ = redis_app
    # Given a batch of several script calls whose 1,500th call cannot become a job
    specs = [add.call(n) for n in range(2 * producing.ENQUEUE_CHUNK)]
    specs[1499] = add.call(*bad[0], **bad[1])
    # Then the call raises the error of that call, and no job of the batch is stored
    with pytest.raises(error, match=r"kwargs|args\[0\]|cannot take"):
        app.enqueue_many(specs)
    assert stored_ids(app) == []


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    # A server of its own: the tests below flush its scripts and drop its connections.
    with RedisServer(tmp_path_factory.mktemp("enqueue-runs")).running() as s:
        yield s


def test_a_server_that_lost_its_scripts_still_stores_a_pipelined_batch_once(
    own_server: RedisServer,
) -> None:
    app, add, _ = make_app(own_server.url)
    try:
        add.enqueue(0)  # connected, scripts loaded
        # Given a server that forgot every script (a restart, SCRIPT FLUSH)
        with own_server.client() as admin:
            admin.script_flush()
        # When a pipelined batch is enqueued
        handles = add.enqueue_many([(n,) for n in range(2 * producing.ENQUEUE_CHUNK + 1)])
        # Then every job is stored once, under its own id
        assert not any(h.existing for h in handles)
        assert [args_of(h.info()) for h in handles[:2]] == [[0], [1]]
        assert len(stored_ids_on(app, own_server)) == len(handles) + 1
    finally:
        app.close()


def test_a_connection_dropped_mid_pipeline_sends_it_again(
    own_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, add, _ = make_app(own_server.url)
    try:
        add.enqueue(0)
        # Given a connection the server drops once the first part of a batch is sent
        sends: list[int] = []
        original = redis.connection.AbstractConnection.send_packed_command

        def send(self: Any, command: Any, check_health: bool = True) -> None:
            sends.append(1)
            if len(sends) == 2 and self._sock is not None:
                host, port = self._sock.getsockname()[:2]
                with own_server.client() as admin:
                    admin.client_kill(f"{host}:{port}")
            original(self, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send)
        # When a pipelined batch goes out on it
        handles = add.enqueue_many([(n,) for n in range(2 * producing.ENQUEUE_CHUNK + 1)])
        monkeypatch.undo()
        # Then it was sent again on a fresh connection, and every job is stored once
        assert len(sends) >= 3  # the first calls, then all of them again
        assert len({h.id for h in handles}) == len(handles)
        assert sorted(stored_ids_on(app, own_server)) == sorted(
            [h.id.encode() for h in handles] + [stored_ids_on(app, own_server)[0]]
        )
    finally:
        app.close()


def stored_ids_on(app: Conveyor, server: RedisServer) -> list[bytes]:
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    with server.client() as raw:
        return indexed_ids(raw, backend)
