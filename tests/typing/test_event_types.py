"""Proof, checked by mypy, that listeners and middleware are typed (see test_enqueue_types)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, assert_type

from conveyor import Conveyor, DispatchResult, Event, ExecutionContext
from conveyor.middleware import JobNext

app = Conveyor("memory://")


class UserRegistered(Event):
    """A typed event."""

    user_id: int


@app.listener(UserRegistered, queued=True, retries=3)
def welcome(event: UserRegistered) -> None:
    """A queued listener."""


@app.middleware
async def passthrough(ctx: ExecutionContext, call_next: JobNext) -> Any:
    """A job middleware."""
    return await call_next()


def check_listeners() -> None:
    assert_type(welcome, Callable[[UserRegistered], Any])
    assert_type(app.dispatch(UserRegistered(user_id=1)), DispatchResult)

    @app.listener(UserRegistered)  # type: ignore[arg-type]
    def wrong(event: int) -> None: ...

    app.listener(UserRegistered, queued=True, retries="3")  # type: ignore[arg-type]
    app.listener(UserRegistered, queued=True, retry=3)  # type: ignore[call-arg]
