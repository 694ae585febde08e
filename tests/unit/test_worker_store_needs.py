"""The worker on stores that lack capabilities: it refuses what it cannot keep, runs the rest."""

from __future__ import annotations

import logging

import pytest

from conveyor import Conveyor, State, Worker
from conveyor.backends.capabilities import Unsupported
from conveyor.backends.memory import MemoryAdmin, MemoryBackend, MemoryState, MemoryTelemetry, Parts
from conveyor.clock import Clock, FakeClock
from conveyor.settings import load_settings
from conveyor.worker.history import attach_history


class NoLimitsBackend(MemoryBackend):
    """A memory store without `Limits` (it keeps no rate windows or slots)."""

    @classmethod
    def compose(cls, state: MemoryState, clock: Clock) -> Parts:
        return Parts(admin=MemoryAdmin(state, clock), telemetry=MemoryTelemetry(state, clock))


def app_on(backend: MemoryBackend, clock: FakeClock) -> Conveyor:
    app = Conveyor(backend.url, settings=load_settings(), clock=clock)
    app._backend = backend  # the store under test, as `use_memory_backend` swaps one in
    return app


def small_store_app(clock: FakeClock) -> Conveyor:
    """An app on ``example://``: the core verbs and `Limits`, no admin, no telemetry."""
    return Conveyor("example://", settings=load_settings(), clock=clock)


@pytest.mark.parametrize(
    ("options", "option"),
    [({"rate_limit": "5/s"}, "rate_limit"), ({"max_concurrency": 2}, "max_concurrency")],
)
async def test_a_limited_task_on_a_store_without_limits_stops_the_worker_before_any_claim(
    clock: FakeClock, options: dict[str, object], option: str
) -> None:
    # Given a store without Limits and an app with a limited task, and a job waiting
    app = app_on(NoLimitsBackend("nolimits://", clock=clock), clock)

    @app.task(**options)  # type: ignore[call-overload]
    async def call() -> None: ...

    handle = await call.enqueue_async()
    # When a worker starts
    with pytest.raises(Unsupported) as raised:
        await Worker(app, burst=True, reaper=False).run()
    # Then it refuses in one line naming the store, the task and the option, claiming nothing
    message = str(raised.value)
    assert "\n" not in message
    assert "nolimits:// store does not keep rate limits" in message
    assert f"{call.name!r}'s {option}" in message
    assert handle.state() is State.READY


async def test_a_store_without_limits_runs_tasks_that_have_none(clock: FakeClock) -> None:
    app = app_on(NoLimitsBackend("nolimits://", clock=clock), clock)

    @app.task
    async def plain() -> str:
        return "ok"

    handle = await plain.enqueue_async()
    worker = Worker(app, burst=True, reaper=False)
    assert await worker.run() == 0
    assert handle.state() is State.SUCCEEDED and worker.counts.succeeded == 1


async def test_a_store_without_telemetry_or_admin_runs_jobs_and_says_once_what_it_skips(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the small example:// store (core and Limits only) and a rate-limited task
    app = small_store_app(clock)
    assert app.backend.capabilities == frozenset({"limits"})

    @app.task(rate_limit="100/s")
    async def limited(n: int) -> int:
        return n

    handles = [await limited.enqueue_async(n) for n in range(3)]
    # When a worker with a short heartbeat and the reaper on runs them all
    worker = Worker(app, burst=True, heartbeat_interval=0.01, reaper_interval=0.01)
    with caplog.at_level(logging.INFO, logger="conveyor.worker"):
        assert await worker.run() == 0
    # Then every job succeeded, with no error or warning on the way, and the heartbeat
    # reached the store without a registry to refresh
    assert [h.state() for h in handles] == [State.SUCCEEDED] * 3
    assert worker.heartbeat_age() is not None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    # And one line each said what the worker does without the registry and without purging
    said = [r.getMessage() for r in caplog.records]
    registry = [m for m in said if "keeps no worker registry or history" in m]
    assert registry == [
        "the example:// store keeps no worker registry or history: `conveyor status` and "
        "the dashboard will not list this worker"
    ]
    assert len([m for m in said if "example:// store cannot purge jobs" in m]) == 1


def test_no_history_recorder_is_attached_on_a_store_without_telemetry(clock: FakeClock) -> None:
    worker = Worker(small_store_app(clock))
    assert attach_history(worker) is None
    assert worker.job_observers == []
