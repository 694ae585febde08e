"""Schedules: cron and interval tick times (DST included) and the missed-tick policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from conveyor import ConfigError
from conveyor.clock import FakeClock
from conveyor.schedule import CronSchedule, IntervalSchedule, due_ticks, iso

PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int) -> float:
    return datetime(*args, tzinfo=PARIS).timestamp()  # type: ignore[misc]


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


def test_cron_next_ticks_on_a_fake_clock() -> None:
    clock = FakeClock(datetime(2024, 1, 1, 12, 7, tzinfo=UTC).timestamp())
    every_5 = CronSchedule("*/5 * * * *")
    assert utc(every_5.after(clock.now())) == "2024-01-01 12:10"
    assert utc(every_5.at_or_before(clock.now())) == "2024-01-01 12:05"
    clock.advance(3 * 60)  # 12:10 exactly: that tick is at-or-before, the next is 12:15
    assert utc(every_5.at_or_before(clock.now())) == "2024-01-01 12:10"
    assert utc(every_5.after(clock.now())) == "2024-01-01 12:15"
    assert utc(every_5.before(clock.now())) == "2024-01-01 12:05"


def test_cron_in_a_time_zone_fires_at_local_wall_time() -> None:
    nine = CronSchedule("0 9 * * *", timezone="Europe/Paris")
    # Winter: 09:00 Paris is 08:00 UTC; summer: 07:00 UTC.
    assert utc(nine.after(paris(2024, 1, 10, 12, 0))) == "2024-01-11 08:00"
    assert utc(nine.after(paris(2024, 7, 10, 12, 0))) == "2024-07-11 07:00"


def test_dst_spring_forward_runs_a_skipped_time_once_at_the_jump() -> None:
    # 31 March 2024: Paris clocks jump from 02:00 to 03:00, so 02:30 does not exist.
    daily = CronSchedule("30 2 * * *", timezone="Europe/Paris")
    first = daily.after(paris(2024, 3, 30, 12, 0))
    assert datetime.fromtimestamp(first, PARIS).strftime("%H:%M %z") == "03:00 +0200"
    second = daily.after(first)
    assert datetime.fromtimestamp(second, PARIS).strftime("%d %H:%M") == "01 02:30"


def test_dst_fall_back_runs_a_repeated_time_twice() -> None:
    # 27 October 2024: 02:00-03:00 happens twice (CEST, then CET), as croniter reads it.
    daily = CronSchedule("30 2 * * *", timezone="Europe/Paris")
    a = daily.after(paris(2024, 10, 26, 12, 0))
    b = daily.after(a)
    assert b - a == 3600
    assert [utc(a), utc(b)] == ["2024-10-27 00:30", "2024-10-27 01:30"]
    assert iso(a) != iso(b)  # distinct unique keys: each is its own tick
    assert utc(daily.after(b)) == "2024-10-28 01:30"


def test_hourly_cron_across_fall_back_has_no_gap_and_no_duplicate_instant() -> None:
    hourly = CronSchedule("0 * * * *", timezone="Europe/Paris")
    t = paris(2024, 10, 27, 0, 30)
    ticks = []
    for _ in range(5):
        t = hourly.after(t)
        ticks.append(t)
    assert [b - a for a, b in pairwise(ticks)] == [3600.0] * 4


def test_invalid_cron_and_timezone_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="cron expression 'every day'"):
        CronSchedule("every day")
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        CronSchedule("* * * * *", timezone="Mars/Olympus")


def test_intervals_align_to_the_epoch() -> None:
    every = IntervalSchedule(timedelta(seconds=30))
    assert every.at_or_before(1_500_000_015.5) == 1_500_000_000.0
    assert every.after(1_500_000_015.5) == 1_500_000_030.0
    assert every.after(1_500_000_030.0) == 1_500_000_060.0
    assert every.before(1_500_000_030.0) == 1_500_000_000.0
    assert every.describe() == "every 30s"
    with pytest.raises(ConfigError, match="at least 1 second"):
        IntervalSchedule(0.5)


# -- missed-tick policies -------------------------------------------------------------------
MINUTE = CronSchedule("* * * * *")
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC).timestamp()


def ticks(last: float | None, now: float, missed: str, limit: int = 100) -> list[float]:
    return due_ticks(MINUTE, last, now, window=5.0, missed=missed, limit=limit)


@pytest.mark.parametrize("missed", ["skip", "run_once", "run_each"])
def test_an_on_time_tick_fires_under_every_policy(missed: str) -> None:
    assert ticks(T0 - 60, T0 + 1, missed) == [T0]
    assert ticks(T0, T0 + 1, missed) == []  # already fired


@pytest.mark.parametrize("missed", ["skip", "run_once", "run_each"])
def test_a_new_entry_starts_at_its_first_on_time_tick(missed: str) -> None:
    assert ticks(None, T0 + 1, missed) == [T0]
    assert ticks(None, T0 + 30, missed) == []  # late: wait for the next one


def test_skip_drops_missed_ticks() -> None:
    # Every scheduler was down from 12:00 to 12:10:30.
    assert ticks(T0, T0 + 630, "skip") == []
    # ... but the next on-time tick fires.
    assert ticks(T0, T0 + 661, "skip") == [T0 + 660]


def test_run_once_fires_the_latest_missed_tick_once() -> None:
    assert ticks(T0, T0 + 630, "run_once") == [T0 + 600]


def test_run_each_fires_every_missed_tick_in_order() -> None:
    assert ticks(T0, T0 + 630, "run_each") == [T0 + 60 * i for i in range(1, 11)]


def test_run_each_is_bounded_to_the_newest_ticks() -> None:
    got = ticks(T0, T0 + 24 * 3600, "run_each", limit=100)
    assert len(got) == 100
    assert got[-1] == T0 + 24 * 3600
    assert got == sorted(got)
