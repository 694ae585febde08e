"""The Scheduler on a memory backend and a fake clock: leadership, exactly-once, policies."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from tests.unit.partial_stores import patch_apps

from conveyor import ConfigError, Conveyor, SerializationError
from conveyor.backends.capabilities import Unsupported
from conveyor.clock import FakeClock
from conveyor.job import JobQuery
from conveyor.scheduler import LEADER_LEASE, Scheduler, entry_rows

NOON = datetime(2024, 1, 1, 12, 0, tzinfo=UTC).timestamp()


async def enqueued(app: Conveyor, task: str) -> list[str]:
    backend = await app.open()
    jobs = await backend.admin.query(JobQuery(task=task, limit=10_000))
    return sorted(j.headers["tick"] for j in jobs)


def minutely(app: Conveyor, missed: str = "run_once") -> None:
    @app.cron("* * * * *", name="every-minute", missed=missed)  # type: ignore[arg-type]
    async def tick_task() -> None: ...


async def test_cron_registers_a_task_and_an_entry(app: Conveyor) -> None:
    @app.cron("*/5 * * * *", timezone="Europe/Paris", args=(1,), kwargs={"b": 2})
    def report(a: int, b: int) -> int:
        return a + b

    entry = app.schedules[report.name]
    assert app.tasks[report.name] is report
    assert (entry.schedule.describe(), entry.timezone, entry.missed) == (
        "*/5 * * * *",
        "Europe/Paris",
        "run_once",
    )
    assert report(1, 2) == 3  # still callable directly


async def test_cron_takes_an_existing_task(app: Conveyor) -> None:
    @app.task(queue="reports")
    async def build() -> None: ...

    again = app.periodic(every=timedelta(minutes=10), name="build-often")(build)
    assert again is build and app.schedules["build-often"].task is build
    with pytest.raises(ConfigError, match="already registered; give queue"):
        app.cron("* * * * *", queue="x", name="other")(build)


async def test_schedule_mistakes_are_config_errors(app: Conveyor) -> None:
    async def f(x: int) -> None: ...

    with pytest.raises(ConfigError, match="missed='sometimes'"):
        app.cron("* * * * *", missed="sometimes")(f)  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match=r"args\[0\]"):
        app.cron("* * * * *", args=(object(),), name="bad-args")(f)
    assert app.tasks == {} and app.schedules == {}  # nothing half-registered
    app.cron("* * * * *", args=(1,), name="once")(f)
    with pytest.raises(ConfigError, match="schedule named 'once'"):
        app.periodic(every=60, name="once")(app.tasks[next(iter(app.tasks))])
    with pytest.raises(ConfigError, match="SCHEDULER_INTERVAL"):
        Scheduler(app, interval=0.01)


async def test_only_the_leader_fires_and_each_tick_runs_once(
    app: Conveyor, clock: FakeClock
) -> None:
    # Given three schedulers on one store and a per-minute entry
    minutely(app)
    clock.set(NOON + 1)
    schedulers = [Scheduler(app, interval=1.0) for _ in range(3)]

    # When all three tick, over and over, through ten minutes
    for _ in range(10):
        for _ in range(3):
            for s in schedulers:
                await s.tick()
            clock.advance(1)
        clock.advance(57)

    # Then exactly one led, and every minute was enqueued once
    assert [s.is_leader for s in schedulers].count(True) == 1
    ticks = await enqueued(app, app.schedules["every-minute"].task.name)
    assert len(ticks) == 10 and len(set(ticks)) == 10


async def test_a_new_leader_takes_over_without_doubling_a_tick(
    app: Conveyor, clock: FakeClock
) -> None:
    minutely(app)
    task = app.schedules["every-minute"].task.name
    clock.set(NOON + 1)
    a, b = Scheduler(app, interval=1.0), Scheduler(app, interval=1.0)
    assert len(await a.tick()) == 1 and a.is_leader
    assert await b.tick() == []

    # When the leader dies without releasing its lease
    clock.advance(a.lease_ttl)

    # Then the other takes over at once, and fires only ticks that are new
    assert await b.tick() == [] and b.is_leader
    clock.advance(60)
    assert len(await b.tick()) == 1
    assert len(await enqueued(app, task)) == 2


async def test_the_enqueued_job_carries_the_tick(app: Conveyor, clock: FakeClock) -> None:
    minutely(app)
    clock.set(NOON + 2)
    [fired] = await Scheduler(app).tick()
    backend = await app.open()
    job = await backend.get(fired.job_id)
    assert job is not None
    assert job.unique_key == "cron:every-minute:2024-01-01T12:00:00.000000Z"
    assert job.headers == {"schedule": "every-minute", "tick": "2024-01-01T12:00:00.000000Z"}
    assert (await backend.scheduling.schedule_state(["every-minute"])) == {"every-minute": NOON}


@pytest.mark.parametrize(("missed", "expected"), [("skip", 0), ("run_once", 1), ("run_each", 30)])
async def test_missed_ticks_follow_the_policy(
    app: Conveyor, clock: FakeClock, missed: str, expected: int
) -> None:
    # Given an entry that fired at noon, then every scheduler was down for half an hour
    minutely(app, missed)
    task = app.schedules["every-minute"].task.name
    clock.set(NOON + 1)
    assert len(await Scheduler(app).tick()) == 1
    clock.advance(30 * 60 + 20)

    # When a scheduler comes back
    await Scheduler(app).tick()

    # Then the missed ticks follow the entry's policy
    assert len(await enqueued(app, task)) == 1 + expected


async def test_without_entries_no_lease_is_taken(app: Conveyor) -> None:
    s = Scheduler(app)
    assert await s.tick() == []
    backend = await app.open()
    assert await backend.scheduling.acquire_lease(LEADER_LEASE, "someone-else", 10)


async def test_run_stops_and_releases_the_lease(app: Conveyor, clock: FakeClock) -> None:
    minutely(app)
    clock.set(NOON + 1)
    s = Scheduler(app, interval=0.1)
    task = asyncio.create_task(s.run())
    async with asyncio.timeout(5):
        while not s.fired:
            await asyncio.sleep(0.01)
    s.stop()
    assert await asyncio.wait_for(task, 5) == 0
    backend = await app.open()
    # released on the way out, so another owner takes it at once
    assert await backend.scheduling.acquire_lease(LEADER_LEASE, "next", 10)


def test_a_store_without_scheduling_is_refused_before_the_scheduler_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patch_apps(monkeypatch, "admin", "telemetry")
    app = Conveyor("partial://")
    minutely(app)
    with pytest.raises(Unsupported) as info:
        Scheduler(app)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "the partial:// store cannot elect a scheduler or record cron ticks (it has no "
        "scheduling capability); the scheduler needs a store that has it"
    )


async def test_entry_rows_without_a_store_have_no_last_run(app: Conveyor) -> None:
    minutely(app)
    [row] = await entry_rows(app, None)
    assert (row["name"], row["last_run"], row["last_run_at"]) == ("every-minute", None, None)
