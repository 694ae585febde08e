"""Cron expressions are checked when declared; a broken entry never crashes a listing or
floods the scheduler's log."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from conveyor import ConfigError, Conveyor
from conveyor.clock import FakeClock
from conveyor.schedule import CronSchedule
from conveyor.scheduler import Scheduler, entry_rows
from conveyor.scheduler.problems import REPEAT_AFTER

NOON = datetime(2024, 1, 1, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("expression", "day", "month"),
    [
        ("0 0 31 2 *", "31", "2"),
        ("0 0 30 feb *", "30", "feb"),
        ("15 8 31 4,6,9,11 *", "31", "4,6,9,11"),
    ],
)
def test_a_date_that_never_comes_is_refused(expression: str, day: str, month: str) -> None:
    with pytest.raises(ConfigError) as info:
        CronSchedule(expression)
    assert str(info.value).startswith(
        f"cron expression {expression!r} never fires: day of month {day!r} never occurs "
        f"in month {month!r}"
    )


def test_rare_but_real_dates_are_accepted() -> None:
    leap_day = CronSchedule("0 0 29 2 *")
    assert leap_day.after(NOON) == datetime(2024, 2, 29, tzinfo=UTC).timestamp()
    # Day of month and day of week both given: either matches (cron's rule), so this fires
    # on every Monday of February although 31 February never comes.
    feb_mondays = CronSchedule("0 0 31 2 mon")
    assert feb_mondays.after(NOON) == datetime(2024, 2, 5, tzinfo=UTC).timestamp()


def test_app_cron_refuses_a_date_that_never_comes_and_registers_nothing(app: Conveyor) -> None:
    with pytest.raises(ConfigError, match="never fires"):

        @app.cron("0 0 31 2 *")
        async def never() -> None: ...

    assert app.tasks == {} and app.schedules == {}


def test_six_fields_are_refused_unless_seconds_are_asked_for() -> None:
    with pytest.raises(ConfigError) as info:
        CronSchedule("0 */5 * * * *")
    message = str(info.value)
    assert "'0 */5 * * * *' has six fields, and Conveyor reads five" in message
    assert "seconds=True" in message


def test_seconds_true_reads_the_seconds_first() -> None:
    # "second minute hour ...": second 0 of every fifth minute, not every second of minute 0
    every_5_min = CronSchedule("0 */5 * * * *", seconds=True)
    assert every_5_min.after(NOON) == NOON + 300
    assert every_5_min.at_or_before(NOON + 299) == NOON
    half_past = CronSchedule("30 * * * * *", seconds=True)
    assert half_past.after(NOON) == NOON + 30
    assert half_past.after(NOON + 30) == NOON + 90


def test_app_cron_takes_seconds_when_asked(app: Conveyor) -> None:
    @app.cron("30 * * * * *", seconds=True, name="half-past")
    async def tick() -> None: ...

    entry = app.schedules["half-past"]
    assert entry.schedule.after(NOON) == NOON + 30
    with pytest.raises(ConfigError, match="seconds=True"):
        app.cron("30 * * * * *", name="six-fields")(tick)


def test_seconds_true_needs_six_fields() -> None:
    with pytest.raises(ConfigError, match="has 5 fields, but seconds=True needs six"):
        CronSchedule("*/5 * * * *", seconds=True)


@pytest.mark.parametrize(
    ("expression", "seconds", "field", "value", "takes"),
    [
        ("61 * * * *", False, "minute", "61", "0-59"),
        ("0 24 * * *", False, "hour", "24", "0-23"),
        ("0 0 0 * *", False, "day of month", "0", "1-31"),
        ("0 0 32 * *", False, "day of month", "32", "1-31"),
        ("0 0 1 13 *", False, "month", "13", "1-12 or jan-dec"),
        ("0 0 * * 8", False, "day of week", "8", "0-6 or sun-sat"),
        ("0 0 * * funday", False, "day of week", "funday", "0-6 or sun-sat"),
        ("1-70 * * * *", False, "minute", "1-70", "0-59"),
        ("60 * * * * *", True, "second", "60", "0-59"),
        ("0 60 * * * *", True, "minute", "60", "0-59"),
    ],
)
def test_an_out_of_range_value_names_its_field(
    expression: str, seconds: bool, field: str, value: str, takes: str
) -> None:
    with pytest.raises(ConfigError) as info:
        CronSchedule(expression, seconds=seconds)
    message = str(info.value)
    assert f"the {field} field {value!r} is out of range or not valid; {field} takes {takes}" in (
        message
    )
    assert "five fields" not in message


@pytest.mark.parametrize("expression", ["* * * *", "* * * * * * *", "every day", ""])
def test_a_wrong_number_of_fields_says_which_five(expression: str) -> None:
    with pytest.raises(ConfigError, match="'minute hour day-of-month month day-of-week'"):
        CronSchedule(expression)


def test_random_fields_are_refused_because_processes_would_disagree() -> None:
    with pytest.raises(ConfigError, match="random field"):
        CronSchedule("R 3 * * *")
    CronSchedule("0 3 * mar *")  # an "r" inside a month name is not random


def test_aliases_are_accepted_and_a_bad_alias_lists_the_good_ones() -> None:
    assert CronSchedule("@hourly").after(NOON) == NOON + 3600
    with pytest.raises(ConfigError, match="one of @hourly, @daily"):
        CronSchedule("@reboot")


def break_entry(app: Conveyor, name: str) -> None:
    """Make entry ``name`` unable to compute ticks, as a schedule built around the checks."""
    schedule = app.schedules[name].schedule
    assert isinstance(schedule, CronSchedule)
    schedule.expression = "0 0 31 2 *"


def two_entries(app: Conveyor) -> None:
    @app.cron("* * * * *", name="good")
    async def good() -> None: ...

    @app.cron("* * * * *", name="broken")
    async def broken() -> None: ...


async def test_schedule_list_shows_why_an_entry_has_no_next_run(
    app: Conveyor, clock: FakeClock
) -> None:
    # Given a working entry and one whose next run cannot be computed
    two_entries(app)
    break_entry(app, "broken")
    clock.set(NOON + 1)

    # When the entries are listed
    broken, good = await entry_rows(app, await app.open())

    # Then both have rows: the broken one says why, the good one is untouched
    assert (broken["name"], broken["next_run"], broken["next_run_at"]) == ("broken", None, None)
    assert broken["error"].startswith("no next run: CroniterBadDateError")
    assert (good["next_run"], good["next_run_at"], good["error"]) == (
        "2024-01-01T12:01:00.000000Z",
        NOON + 60,
        None,
    )


async def test_a_broken_entry_is_logged_rarely_and_the_others_still_fire(
    app: Conveyor, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a working entry and a broken one, and a scheduler ticking every second
    two_entries(app)
    break_entry(app, "broken")
    clock.set(NOON + 1)
    scheduler = Scheduler(app, interval=1.0)

    def problems() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "schedule broken cannot fire" in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="conveyor.scheduler"):
        # When it ticks for three minutes
        fired = []
        for _ in range(180):
            fired += await scheduler.tick()
            clock.advance(1)

        # Then the good entry fired each minute (12:00 to 12:03), the broken one was logged once
        assert [f.entry for f in fired] == ["good"] * 4
        assert len(problems()) == 1
        assert problems()[0].levelno == logging.ERROR

        # When the problem persists for an hour, it is logged once more
        clock.advance(REPEAT_AFTER)
        await scheduler.tick()
        await scheduler.tick()
        assert len(problems()) == 2

        # When the entry is fixed, it says so and fires again
        schedule = app.schedules["broken"].schedule
        assert isinstance(schedule, CronSchedule)
        schedule.expression = "* * * * *"
        clock.advance(60)
        fired = await scheduler.tick()
        assert sorted(f.entry for f in fired) == ["broken", "good"]
        assert any(r.getMessage() == "schedule broken fires again" for r in caplog.records)
