"""Registering tasks and enqueueing them: options, unique keys, handles."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from conveyor import (
    ConfigError,
    Conveyor,
    JobFailed,
    JobNotFound,
    Priority,
    SerializationError,
    State,
    Task,
    UnknownTask,
)
from conveyor.clock import FakeClock
from conveyor.job import JobQuery
from conveyor.testing import drain, drain_async, make_test_app


def stored(app: Conveyor) -> int:
    """How many jobs the app's store holds."""
    return len(asyncio.run(app.backend.admin.query(JobQuery(limit=10_000))))


# -- registering ---------------------------------------------------------------------------


def test_decorator_with_and_without_parentheses_on_async_and_sync(app: Conveyor) -> None:
    @app.task
    async def a1() -> None: ...

    @app.task()
    async def a2() -> None: ...

    @app.task
    def s1() -> None: ...

    @app.task(queue="q")
    def s2() -> None: ...

    assert all(isinstance(t, Task) for t in (a1, a2, s1, s2))
    assert (a1.is_async, a2.is_async, s1.is_async, s2.is_async) == (True, True, False, False)
    assert a1.name == f"{__name__}.test_decorator_with_and_without_parentheses_on_async_and_sync.a1"
    assert set(app.tasks) == {t.name for t in (a1, a2, s1, s2)}
    assert app.get_task(s2.name) is s2


def test_defaults_come_from_the_settings_and_options_from_the_decorator() -> None:
    app = make_test_app(max_retries=7, job_timeout=12)

    @app.task(name="mail.send", queue="mail", priority="high", retries=1, timeout=3)
    def send(to: str) -> str:
        """Send a mail."""
        return to

    @app.task
    def plain() -> None: ...

    assert (send.name, send.queue, send.priority) == ("mail.send", "mail", Priority.HIGH)
    assert send.__doc__ == "Send a mail." and send.__name__ == "send"
    assert send("x") == "x"  # a direct call just runs the function
    record = send.enqueue("a").info()
    assert (record.queue, record.priority, record.max_retries, record.timeout) == (
        "mail",
        Priority.HIGH,
        1,
        3.0,
    )
    plain_record = plain.enqueue().info()
    assert (plain_record.queue, plain_record.priority) == ("default", Priority.NORMAL)
    assert (plain_record.max_retries, plain_record.timeout) == (7, 12.0)


def test_duplicate_names_are_rejected(app: Conveyor) -> None:
    @app.task(name="same")
    def one() -> None: ...

    with pytest.raises(ConfigError, match="'same' is already registered"):

        @app.task(name="same")
        def two() -> None: ...


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": "urgent"}, "unknown priority 'urgent'"),
        ({"retries": -1}, "retries=-1 is negative"),
        ({"timeout": 0}, "must be > 0"),
        ({"queue": "bad queue!"}, "queue name 'bad queue!' is not valid"),
        ({"queue": ""}, "queue name '' is not valid"),
        ({"name": "x" * 201}, "task name"),
        ({"backoff": -3}, "negative"),
    ],
)
def test_bad_options_are_rejected(app: Conveyor, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):

        @app.task(**options)  # type: ignore[call-overload]
        def job() -> None: ...


def test_get_task_names_what_is_registered(app: Conveyor) -> None:
    @app.task(name="known")
    def known() -> None: ...

    with pytest.raises(UnknownTask, match=r"'missing' .* \(registered: known\)"):
        app.get_task("missing")


def test_a_task_of_another_app_cannot_be_enqueued_through_this_one(app: Conveyor) -> None:
    other = make_test_app()

    @other.task
    def elsewhere() -> None: ...

    with pytest.raises(ConfigError, match="belongs to another Conveyor app"):
        app.enqueue_many([elsewhere.call()])


# -- per-call options ------------------------------------------------------------------------------


def test_per_call_options_override_the_task(app: Conveyor, clock: FakeClock) -> None:
    @app.task(queue="jobs", priority="low", retries=2, timeout=9)
    def work(n: int) -> None: ...

    record = (
        work.options(delay=60, priority="high", queue="other", retries=0, timeout=1.5)
        .options(headers={"tenant": "acme"})
        .enqueue(1)
        .info()
    )
    assert record.state is State.SCHEDULED
    assert record.run_at == clock.now() + 60
    assert (record.queue, record.priority, record.max_retries, record.timeout) == (
        "other",
        Priority.HIGH,
        0,
        1.5,
    )
    assert record.headers["tenant"] == "acme"
    # No correlation_id: outside a job or correlation scope the job's own id is its id
    assert set(record.headers) == {"tenant"}


def test_run_at_takes_aware_datetimes_and_timestamps(app: Conveyor, clock: FakeClock) -> None:
    @app.task
    def work() -> None: ...

    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert work.options(run_at=when).enqueue().info().run_at == when.timestamp()
    assert work.options(run_at=clock.now() + 5).enqueue().info().run_at == clock.now() + 5
    assert work.options(run_at=clock.now() - 5).enqueue().state() is State.READY


def test_a_naive_datetime_is_rejected(app: Conveyor) -> None:
    @app.task
    def work() -> None: ...

    with pytest.raises(ConfigError, match="naive datetime"):
        work.options(run_at=datetime(2030, 1, 1)).enqueue()
    assert stored(app) == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delay": 1, "run_at": 5.0}, "either delay= or run_at="),
        ({"delay": -1}, "negative"),
        ({"priority": "urgent"}, "unknown priority"),
        ({"queue": "a b"}, "queue name"),
        ({"retries": -1}, "negative"),
        ({"timeout": -1}, "> 0"),
    ],
)
def test_bad_per_call_options_are_rejected(
    app: Conveyor, options: dict[str, object], message: str
) -> None:
    @app.task
    def work() -> None: ...

    with pytest.raises(ConfigError, match=message):
        work.options(**options)  # type: ignore[arg-type]


def test_headers_must_be_json_too(app: Conveyor) -> None:
    @app.task
    def work() -> None: ...

    with pytest.raises(SerializationError, match=r"^headers\['when'\] is a datetime"):
        work.options(headers={"when": datetime.now(UTC)}).enqueue()


# -- unique keys ---------------------------------------------------------------------------


def test_a_string_unique_key_returns_the_existing_job(app: Conveyor) -> None:
    @app.task(unique_key="nightly")
    def report() -> None: ...

    first = report.enqueue()
    second = report.enqueue()
    assert (first.existing, second.existing) == (False, True)
    assert second.id == first.id
    assert stored(app) == 1


def test_a_callable_unique_key_sees_the_arguments(app: Conveyor) -> None:
    @app.task(unique_key=lambda product_id, **_: f"sync-{product_id}")
    def sync_product(product_id: int, force: bool = False) -> None: ...

    a = sync_product.enqueue(7)
    b = sync_product.enqueue(7, force=True)
    c = sync_product.enqueue(8)
    assert b.existing and b.id == a.id
    assert not c.existing and c.id != a.id
    assert a.info().unique_key == "sync-7"


def test_a_per_call_unique_key_and_its_release_once_final(app: Conveyor) -> None:
    @app.task
    def work(n: int) -> None: ...

    first = work.options(unique_key="k").enqueue(1)
    assert work.options(unique_key="k").enqueue(2).existing
    drain(app)
    assert first.state() is State.SUCCEEDED
    again = work.options(unique_key="k").enqueue(3)
    assert not again.existing and again.id != first.id


# -- many at once, and handles ---------------------------------------------------------------------


def test_enqueue_many(app: Conveyor) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    @app.task
    async def shout(word: str) -> str:
        return word.upper()

    handles = app.enqueue_many([add.call(1, 2), shout.call("hi"), add.options(delay=5).call(3, 4)])
    more = add.enqueue_many([(5, 6), (7, 8)])
    assert [h.state() for h in handles] == [State.READY, State.READY, State.SCHEDULED]
    assert len({h.id for h in handles + more}) == 5
    drain(app)
    assert [h.result() for h in (*handles, *more)] == [3, "HI", 7, 11, 15]


async def test_enqueue_async_and_result_async(app: Conveyor) -> None:
    @app.task
    async def double(n: int) -> int:
        return 2 * n

    handle = await double.enqueue_async(21)
    many = await app.enqueue_many_async([double.call(1), double.call(2)])
    assert (await handle.info_async()).state is State.READY
    await drain_async(app)
    assert await handle.result_async(timeout=1) == 42
    assert [await h.result_async() for h in many] == [2, 4]


def test_result_raises_job_failed_with_the_record(app: Conveyor) -> None:
    @app.task(retries=0)
    def broken() -> None:
        raise RuntimeError("kaput")

    handle = broken.enqueue()
    drain(app)
    with pytest.raises(JobFailed, match="ended dead: RuntimeError: kaput") as info:
        handle.result()
    assert info.value.record.state is State.DEAD  # type: ignore[attr-defined]


def test_result_times_out_while_the_job_is_not_final(app: Conveyor) -> None:
    @app.task
    def later() -> None: ...

    handle = later.options(delay=60).enqueue()
    with pytest.raises(TimeoutError, match=r"still scheduled after 0\.05s"):
        handle.result(timeout=0.05)


def test_a_handle_on_a_missing_job(app: Conveyor) -> None:
    with pytest.raises(JobNotFound, match="nope does not exist"):
        app.job("nope").info()


async def test_backend_queries_see_what_was_enqueued(app: Conveyor) -> None:
    @app.task(queue="mail")
    def send() -> None: ...

    send.enqueue()
    found = await app.backend.admin.query(JobQuery(queue="mail"))
    assert [j.task for j in found] == [send.name]
