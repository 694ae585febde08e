"""Cron expressions are checked when declared."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor import ConfigError, Conveyor
from conveyor.schedule import CronSchedule

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
