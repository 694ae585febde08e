"""Schedules: cron expressions and fixed intervals, and the entries `@app.cron` registers.

A schedule is a pure function of time: the tick times it yields are the same in every
process, so any number of schedulers agree on them. `due_ticks` decides which ticks a
scheduler fires now, given the last one fired and the entry's missed-tick policy. The
running part lives in `conveyor.scheduler`.

Time zones and daylight saving time are handled as croniter handles them (with
`zoneinfo` zones): a wall-clock time skipped by a spring-forward transition fires at the
first instant after the jump (``30 2 * * *`` in Europe/Paris fires at 03:00 that day), and
a time that occurs twice at a fall-back transition fires twice (once per UTC instant).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    ParamSpec,
    Protocol,
    TypedDict,
    TypeVar,
    get_args,
    overload,
)
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from conveyor.errors import ConfigError
from conveyor.job import Priority
from conveyor.option_checks import check_name
from conveyor.task import CallOptions, JobSpec, Task

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.job import NewJob

P = ParamSpec("P")
R = TypeVar("R")

Missed = Literal["skip", "run_once", "run_each"]
MISSED_POLICIES: tuple[str, ...] = get_args(Missed)
#: The most ticks one entry catches up on with ``missed="run_each"`` (the newest are kept).
MAX_CATCH_UP = 100


class Schedule(Protocol):
    """Tick times, in seconds since the epoch."""

    def at_or_before(self, t: float) -> float:
        """The latest tick at or before ``t``."""
        ...

    def before(self, t: float) -> float:
        """The latest tick strictly before ``t``."""
        ...

    def after(self, t: float) -> float:
        """The first tick strictly after ``t``."""
        ...

    def describe(self) -> str:
        """The schedule as a user wrote it (``*/5 * * * *``, ``every 30s``)."""
        ...


#: Each cron field and the values it takes, in order (``seconds=True`` puts SECOND_FIELD first).
CRON_FIELDS: tuple[tuple[str, str], ...] = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31 or L (the last day)"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-6 or sun-sat (7 is Sunday too)"),
)
SECOND_FIELD = ("second", "0-59")
FIVE_FIELDS = "'minute hour day-of-month month day-of-week'"
SIX_FIELDS = "'second minute hour day-of-month month day-of-week'"
# croniter's random values ("R", "R(0-30)", "R/5"): drawn anew by every process and call.
_RANDOM = re.compile(r"r(\(\d+-\d+\))?(/\d+)?", re.IGNORECASE)


def check_cron(expression: object, *, seconds: bool = False) -> None:
    """Refuse a cron expression croniter would misread, or reject without saying where.

    croniter takes five fields, or six with seconds *last*; Conveyor takes five, or six
    with seconds *first* (Quartz and Spring style) only when ``seconds`` asks for them, so
    ``0 */5 * * * *`` is never silently read as "every second of minute 0". A value out of
    its range names its field, and an expression whose date never comes (``0 0 31 2 *``)
    is refused here instead of failing at every scheduler tick.
    """
    if not isinstance(expression, str):
        raise ConfigError(f"cron expression {expression!r} must be a string, e.g. '*/5 * * * *'")
    fields = expression.split()
    names = ((SECOND_FIELD,) if seconds else ()) + CRON_FIELDS
    alias = len(fields) == 1 and fields[0].startswith("@")  # @daily, @hourly, ...
    if not alias and len(fields) != len(names):
        raise ConfigError(_field_count_problem(expression, len(fields), seconds=seconds))
    if any(_RANDOM.fullmatch(part) for f in fields for part in f.split(",")):
        raise ConfigError(
            f"cron expression {expression!r} has a random field (R): every process would "
            "draw other times; write the value itself"
        )
    try:
        croniter.expand(expression, second_at_beginning=seconds)
    except CroniterError as exc:
        raise ConfigError(_bad_field_problem(expression, fields, names, exc)) from None
    try:
        croniter(expression, time.time(), second_at_beginning=seconds).get_next(float)
    except CroniterBadDateError:
        day, month = (fields[-3], fields[-2]) if not alias else ("?", "?")  # aliases all fire
        raise ConfigError(
            f"cron expression {expression!r} never fires: day of month {day!r} never "
            f"occurs in month {month!r}; change one of them (L is the last day of a month)"
        ) from None


def _field_count_problem(expression: str, count: int, *, seconds: bool) -> str:
    if seconds:
        return (
            f"cron expression {expression!r} has {count} fields, but seconds=True needs six: "
            f"{SIX_FIELDS}, e.g. '0 */5 * * * *'"
        )
    if count == 6:
        return (
            f"cron expression {expression!r} has six fields, and Conveyor reads five, "
            f"{FIVE_FIELDS}; to give seconds as a first field, ask for them with "
            f"seconds=True (then the fields are {SIX_FIELDS})"
        )
    return (
        f"cron expression {expression!r} has {count} fields: use five, {FIVE_FIELDS}, "
        "e.g. '*/5 * * * *'"
    )


def _bad_field_problem(
    expression: str,
    fields: list[str],
    names: tuple[tuple[str, str], ...],
    exc: CroniterError,
) -> str:
    # croniter says "out of range" without saying where: ask it about each field alone.
    seconds = len(names) > len(CRON_FIELDS)
    labelled = zip(names, fields, strict=True) if len(fields) == len(names) else ()
    for i, ((name, values), value) in enumerate(labelled):
        alone = " ".join(value if j == i else "*" for j in range(len(names)))
        if not croniter.is_valid(alone, second_at_beginning=seconds):
            return (
                f"cron expression {expression!r}: the {name} field {value!r} is out of range "
                f"or not valid; {name} takes {values}, with *, lists (1,5), ranges (1-5) "
                "and steps (*/15)"
            )
    return (
        f"cron expression {expression!r} is not valid ({exc}); use five fields, "
        f"{FIVE_FIELDS}, or one of @hourly, @daily, @weekly, @monthly, @yearly"
    )


class CronSchedule:
    """A cron expression evaluated in a time zone (croniter semantics, DST included).

    Five fields (``minute hour day-of-month month day-of-week``); with ``seconds=True``,
    six, the seconds first. Checked here by `check_cron`: a schedule that exists fires.
    """

    def __init__(self, expression: str, timezone: str = "UTC", *, seconds: bool = False) -> None:
        check_cron(expression, seconds=seconds)
        try:
            self.tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"timezone={timezone!r} is not a known IANA time zone; use a name such as "
                "'UTC' or 'Europe/Paris'"
            ) from None
        self.expression = expression
        self.timezone = timezone
        self.seconds = seconds

    def _iter(self, t: float) -> croniter:
        return croniter(
            self.expression,
            datetime.fromtimestamp(t, self.tz),
            second_at_beginning=self.seconds,
        )

    def at_or_before(self, t: float) -> float:
        # Cron ticks fall on whole seconds, so "before floor(t) + 1" means "at or before t".
        return float(self._iter(math.floor(t) + 1).get_prev(float))

    def before(self, t: float) -> float:
        return float(self._iter(t).get_prev(float))

    def after(self, t: float) -> float:
        return float(self._iter(t).get_next(float))

    def describe(self) -> str:
        return self.expression


class IntervalSchedule:
    """Every ``every`` seconds, on multiples of ``every`` since the Unix epoch (UTC).

    Aligning to the epoch (rather than to when a process started) is what lets every
    scheduler compute the same ticks without talking to each other.
    """

    def __init__(self, every: float | timedelta) -> None:
        seconds = every.total_seconds() if isinstance(every, timedelta) else float(every)
        if not math.isfinite(seconds) or seconds < 1:
            raise ConfigError(f"every={every!r} must be at least 1 second")
        self.every = seconds

    def at_or_before(self, t: float) -> float:
        v = math.floor(t / self.every) * self.every
        while v > t:  # float rounding may land one step off either way
            v -= self.every
        while v + self.every <= t:
            v += self.every
        return v

    def before(self, t: float) -> float:
        v = self.at_or_before(t)
        return v - self.every if v >= t else v

    def after(self, t: float) -> float:
        return self.at_or_before(t) + self.every

    def describe(self) -> str:
        return f"every {self.every:g}s"


def due_ticks(
    schedule: Schedule,
    last: float | None,
    now: float,
    *,
    window: float,
    missed: str = "run_once",
    limit: int = MAX_CATCH_UP,
) -> list[float]:
    """The ticks to fire at ``now``, oldest first.

    ``last`` is the last tick fired (``None``: never). A tick is on time when it is at most
    ``window`` seconds old; older unfired ticks were missed (every scheduler was down) and
    follow ``missed``: ``skip`` fires none of them, ``run_once`` fires the latest one, and
    ``run_each`` fires each of them, at most ``limit`` (the newest). An entry that never
    fired starts with its first on-time tick.
    """
    latest = schedule.at_or_before(now)
    if last is not None and latest <= last:
        return []
    on_time = now - latest <= window
    if last is None or missed == "skip":
        return [latest] if on_time else []
    if missed == "run_once":
        return [latest]
    ticks = [latest]
    t = latest
    while len(ticks) < limit:
        t = schedule.before(t)
        if t <= last:
            break
        ticks.append(t)
    return ticks[::-1]


def iso(t: float) -> str:
    """A tick as an ISO 8601 UTC time, as it appears in unique keys and headers."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One registered schedule: which task to enqueue, with which arguments, and when."""

    name: str
    task: Task[Any, Any]
    schedule: CronSchedule | IntervalSchedule
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    missed: str = "run_once"

    @property
    def timezone(self) -> str:
        """The entry's time zone (intervals are zone-free: UTC)."""
        return self.schedule.timezone if isinstance(self.schedule, CronSchedule) else "UTC"

    def unique_key(self, tick: float) -> str:
        """The key that makes one tick one job: ``cron:<entry>:<tick as UTC ISO time>``."""
        return f"cron:{self.name}:{iso(tick)}"

    def job(self, app: Conveyor, tick: float) -> NewJob:
        """The job this entry enqueues for ``tick``."""
        options = CallOptions(
            unique_key=self.unique_key(tick),
            headers={"schedule": self.name, "tick": iso(tick)},
        )
        return app.build(JobSpec(self.task, self.args, dict(self.kwargs), options))


class ScheduleDecorator(Protocol):
    """What `Conveyor.cron` and `Conveyor.periodic` return: it takes a function or a task."""

    @overload
    def __call__(self, fn: Task[P, R]) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Task[P, R]: ...


class TaskOptions(TypedDict, total=False):
    """Options of the task `Conveyor.cron` / `Conveyor.periodic` register for a function."""

    queue: str
    priority: str | int | Priority
    retries: int
    timeout: float


def schedule_decorator(
    app: Conveyor,
    schedule: CronSchedule | IntervalSchedule,
    *,
    name: str | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    missed: str,
    task_options: dict[str, Any],
) -> ScheduleDecorator:
    """The decorator `Conveyor.cron` and `Conveyor.periodic` return."""

    def decorate(fn: Any) -> Any:
        return register(
            app,
            fn,
            schedule,
            name=name,
            args=args,
            kwargs=kwargs,
            missed=missed,
            task_options=task_options,
        )

    return decorate


def register(
    app: Conveyor,
    fn: Callable[..., Any] | Task[Any, Any],
    schedule: CronSchedule | IntervalSchedule,
    *,
    name: str | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    missed: str,
    task_options: dict[str, Any],
) -> Task[Any, Any]:
    """Register ``fn`` (a function, made a task, or an existing task) on a schedule."""
    if missed not in MISSED_POLICIES:
        raise ConfigError(
            f"missed={missed!r} is not a missed-tick policy: use one of "
            f"{', '.join(MISSED_POLICIES)}"
        )
    given = {k: v for k, v in task_options.items() if v is not None}
    if isinstance(fn, Task):
        if fn.app is not app:
            raise ConfigError(f"task {fn.name!r} belongs to another Conveyor app")
        if given:
            raise ConfigError(
                f"task {fn.name!r} is already registered; give {', '.join(sorted(given))} "
                "to @app.task instead of the schedule"
            )
        task: Task[Any, Any] = fn
    else:
        task = app.task(**given)(fn)
    try:
        entry_name = check_name("schedule", name or task.name)
        if entry_name in app.schedules:
            raise ConfigError(
                f"a schedule named {entry_name!r} is already registered; give one of them "
                "another name= option"
            )
        entry = ScheduleEntry(entry_name, task, schedule, tuple(args), dict(kwargs or {}), missed)
        # Build one job now, so bad arguments fail at registration, not at the first tick.
        entry.job(app, 0.0)
    except Exception:
        if task is not fn:
            del app.tasks[task.name]  # registered just for this schedule: undo it
        raise
    app.schedules[entry_name] = entry
    return task
