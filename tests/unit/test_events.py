"""Events: typed fields, listeners run at once or queued as jobs, failures isolated."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from conveyor import Conveyor, Event, ListenersFailed, State, current_job
from conveyor.errors import ConfigError
from conveyor.testing import drain


class UserRegistered(Event):
    """A user signed up."""

    user_id: int
    email: str
    at: datetime
    tags: list[str] = []


class AdminRegistered(UserRegistered):
    """An admin signed up (listeners of `UserRegistered` hear it too)."""

    level: int = 1


def make_event(**changes: object) -> UserRegistered:
    fields: dict[str, object] = {
        "user_id": 7,
        "email": "a@example.com",
        "at": datetime(2024, 5, 1, 12, tzinfo=UTC),
    }
    fields.update(changes)
    return UserRegistered.model_validate(fields)


def test_listeners_run_at_once_in_registration_order(app: Conveyor) -> None:
    seen: list[tuple[str, int]] = []

    @app.listener(UserRegistered)
    def first(event: UserRegistered) -> None:
        seen.append(("first", event.user_id))

    @app.listener(UserRegistered)
    async def second(event: UserRegistered) -> None:
        seen.append(("second", event.user_id))

    result = app.dispatch(make_event())
    assert seen == [("first", 7), ("second", 7)]
    assert result.ok and len(result.ran) == 2 and result.queued == []
    assert first(make_event(user_id=1)) is None  # the decorator returns the function as is


async def test_dispatch_async_awaits_async_and_threads_sync_listeners(app: Conveyor) -> None:
    seen: list[str] = []

    @app.listener(UserRegistered)
    def plain(event: UserRegistered) -> None:
        seen.append(f"plain {event.email}")

    @app.listener(UserRegistered)
    async def coro(event: UserRegistered) -> None:
        seen.append(f"coro {event.email}")

    result = await app.dispatch_async(make_event())
    assert seen == ["plain a@example.com", "coro a@example.com"]
    assert result.ok


def test_sync_dispatch_inside_a_running_loop_still_runs_async_listeners(app: Conveyor) -> None:
    import asyncio

    seen: list[int] = []

    @app.listener(UserRegistered)
    async def coro(event: UserRegistered) -> None:
        seen.append(event.user_id)

    async def caller() -> None:
        app.dispatch(make_event())  # sync code called from async code

    asyncio.run(caller())
    assert seen == [7]


def test_a_failing_listener_never_stops_the_others(
    app: Conveyor, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    @app.listener(UserRegistered)
    def broken(event: UserRegistered) -> None:
        raise RuntimeError("mail server down")

    @app.listener(UserRegistered)
    def fine(event: UserRegistered) -> None:
        seen.append("fine")

    @app.listener(UserRegistered, queued=True)
    def later(event: UserRegistered) -> None: ...

    # When an event is dispatched and its first listener raises
    result = app.dispatch(make_event())
    # Then the others ran and were queued anyway, and the failure is logged at error
    assert seen == ["fine"] and len(result.queued) == 1
    [failure] = result.failed
    assert failure.listener.startswith("listener:")
    assert failure.listener.endswith("test_a_failing_listener_never_stops_the_others.broken")
    errors = [r for r in caplog.records if r.name == "conveyor.events"]
    assert errors[0].levelno == logging.ERROR and "mail server down" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    # And raise_errors=True raises one aggregate error, after every listener ran
    with pytest.raises(ListenersFailed, match="1 listener") as info:
        app.dispatch(make_event(), raise_errors=True)
    assert seen == ["fine", "fine"]
    assert isinstance(info.value.errors[0], RuntimeError)


def test_a_queued_listener_becomes_one_job_with_its_task_options(app: Conveyor) -> None:
    received: list[UserRegistered] = []

    @app.listener(UserRegistered, queued=True, queue="events", retries=2, priority="high")
    async def welcome(event: UserRegistered) -> None:
        if current_job().attempt == 1:
            raise RuntimeError("flaky")
        received.append(event)

    @app.listener(UserRegistered, queued=True, name="audit-signup", queue="audit")
    def audit(event: UserRegistered) -> None:
        received.append(event)

    event = make_event(tags=["beta"])
    # When the event is dispatched
    result = app.dispatch(event)
    # Then one job per queued listener is stored, nothing ran yet
    assert result.ran == [] and received == []
    first, second = (h.info() for h in result.queued)
    assert (first.queue, first.priority.label, first.max_retries) == ("events", "high", 2)
    assert (second.task, second.queue) == ("audit-signup", "audit")
    # And a worker rebuilds the typed event for each, retries included
    report = drain(app)
    assert report.ok and report.retried == 1
    assert received == [event, event]
    assert isinstance(received[0], UserRegistered)
    assert received[0].at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert received[0].tags == ["beta"]


def test_listeners_of_a_base_event_hear_its_subclasses(app: Conveyor) -> None:
    seen: list[str] = []

    @app.listener(AdminRegistered)
    def admin(event: AdminRegistered) -> None:
        seen.append(f"admin {event.level}")

    @app.listener(UserRegistered)
    def user(event: UserRegistered) -> None:
        seen.append("user")

    event = AdminRegistered(user_id=1, email="root@example.com", at=datetime.now(UTC), level=3)
    app.dispatch(event)
    app.dispatch(make_event())
    assert seen == ["admin 3", "user", "user"]


def test_event_fields_are_typed_and_immutable() -> None:
    event = make_event(user_id="12")
    assert event.user_id == 12
    with pytest.raises(ValueError, match="user_id"):
        make_event(user_id="not a number")
    with pytest.raises(ValueError, match="frozen"):
        event.user_id = 3  # type: ignore[misc]
    assert UserRegistered.model_validate(event.model_dump(mode="json")) == event


def test_queued_listener_jobs_follow_the_dispatchers_correlation_id(app: Conveyor) -> None:
    from conveyor.middleware import correlation_scope

    @app.listener(UserRegistered, queued=True)
    def later(event: UserRegistered) -> None: ...

    with correlation_scope("signup-1"):
        result = app.dispatch(make_event())
    assert result.queued[0].info().headers["correlation_id"] == "signup-1"
    drain(app).raise_on_failure()
    assert result.queued[0].state() is State.SUCCEEDED


def test_task_options_need_a_queued_listener(app: Conveyor) -> None:
    with pytest.raises(ConfigError, match="queued=True"):
        app.listener(UserRegistered, retries=3)
