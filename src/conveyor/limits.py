"""Rate and concurrency limits: parsed from task options, enforced by the worker in storage.

A task may carry ``rate_limit="45/s"`` (also ``/m`` and ``/h``) and ``max_concurrency=N``,
each either for the whole task or per key (``rate_limit_key=`` / ``concurrency_key=``, a
function of the task's arguments, e.g. one limit per account). Right before a job starts,
the worker asks the store's `Limits` capability (``store.limits.rate_acquire`` /
``slot_acquire``; `conveyor.worker.admission`), so the limits hold across every worker
process and machine sharing the store; a worker on a store without that capability refuses
to start. A job over a limit is put back to wait in storage with `Backend.defer`: it does
not run, is not retried and keeps its attempts. A task may also raise
`conveyor.RateLimited` (say on HTTP 429) to be rescheduled after ``retry_after`` seconds
without using an attempt, at most ``max_rate_limited`` times.

How the window works: ``45/s`` means at most 45 starts in any window of one second (a
sliding log, not fixed buckets, so two bursts either side of a bucket edge cannot add up to
90), measured over the period plus a small guard (`GUARD_SECONDS`, 100 ms), so jitter
between the worker and a remote API that counts the same limit does not push one request
into the API's window. Bursts are smoothed by a second, finer window: at most a tenth of
the limit (at least one) in any tenth of the period, so 45 jobs waiting for the window do
not all start in the same millisecond and arrive at the API as one burst.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.job import JobRecord

#: Extra seconds added to a rate window, for jitter between our clock and the API's.
GUARD_SECONDS = 0.1
#: Bursts are smoothed: at most 1/SMOOTHING of the limit in any 1/SMOOTHING of the period.
SMOOTHING = 10
#: Times a job may raise `RateLimited` before it counts as a failed attempt, by default.
DEFAULT_MAX_RATE_LIMITED = 25
#: Header that counts a job's `RateLimited` reschedules.
RATE_LIMITED_HEADER = "conveyor.rate_limited"

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)\s*$")

KeyFunction = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` starts per ``period`` seconds."""

    limit: int
    period: float

    @classmethod
    def parse(cls, text: str | Rate) -> Rate:
        """``"45/s"``, ``"100/m"``, ``"1000/h"``, ``"10/5s"`` (ten per five seconds)."""
        if isinstance(text, Rate):
            return text
        match = _RATE.match(text.lower()) if isinstance(text, str) else None
        unit = _UNITS.get(match.group(3)) if match else None
        if match is None or unit is None:
            raise ConfigError(
                f"rate_limit={text!r} is not a rate: write a count per unit, like '45/s', "
                "'100/m', '1000/h' or '10/5s'"
            )
        count, span = int(match.group(1)), float(match.group(2) or 1)
        if count < 1 or span <= 0:
            raise ConfigError(f"rate_limit={text!r} must allow at least 1 start per period")
        return cls(count, span * unit)

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"

    def burst(self) -> Rate:
        """The smoothing window: a tenth of the limit (at least 1) per tenth of the period."""
        return Rate(max(1, -(-self.limit // SMOOTHING)), self.period / SMOOTHING)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one task (`NO_LIMITS` when it has none)."""

    rate: Rate | None = None
    rate_key: KeyFunction | None = None
    max_concurrency: int | None = None
    concurrency_key: KeyFunction | None = None
    max_rate_limited: int = DEFAULT_MAX_RATE_LIMITED

    @classmethod
    def build(
        cls,
        *,
        rate_limit: str | Rate | None,
        rate_limit_key: KeyFunction | None,
        max_concurrency: int | None,
        concurrency_key: KeyFunction | None,
        max_rate_limited: int | None,
    ) -> Limits:
        """Check the task options and bundle them; clear errors for wrong ones."""
        if rate_limit_key is not None and rate_limit is None:
            raise ConfigError("rate_limit_key= needs rate_limit= too, e.g. rate_limit='10/s'")
        if concurrency_key is not None and max_concurrency is None:
            raise ConfigError("concurrency_key= needs max_concurrency= too, e.g. 1")
        for name, fn in (("rate_limit_key", rate_limit_key), ("concurrency_key", concurrency_key)):
            if fn is not None and not callable(fn):
                raise ConfigError(
                    f"{name}= must be a function of the task's arguments returning a key "
                    f"(e.g. lambda account_id, **_: account_id), not {fn!r}"
                )
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ConfigError(f"max_concurrency={max_concurrency!r} must be a whole number >= 1")
        if max_rate_limited is not None and max_rate_limited < 0:
            raise ConfigError(f"max_rate_limited={max_rate_limited!r} must be 0 or more")
        return cls(
            rate=None if rate_limit is None else Rate.parse(rate_limit),
            rate_key=rate_limit_key,
            max_concurrency=max_concurrency,
            concurrency_key=concurrency_key,
            max_rate_limited=(
                DEFAULT_MAX_RATE_LIMITED if max_rate_limited is None else max_rate_limited
            ),
        )

    @property
    def gated(self) -> bool:
        """Whether a job must pass the backend before it starts."""
        return self.rate is not None or self.max_concurrency is not None


#: The limits of a task that has none.
NO_LIMITS = Limits()


def limit_key(
    kind: str, task: str, fn: KeyFunction | None, args: list[Any], kwargs: dict[str, Any]
) -> str:
    """The storage key of a task's limit: per task, or per the key function's value."""
    if fn is None:
        return f"{kind}:{task}"
    try:
        value = fn(*args, **kwargs)
    except Exception as exc:
        raise ConfigError(
            f"the {kind} key function of task {task!r} raised {type(exc).__name__}: {exc}; "
            "it must accept the task's arguments and return a string"
        ) from exc
    return f"{kind}:{task}:{value}"


def rate_limited_headers(job: JobRecord) -> tuple[int, dict[str, Any]]:
    """How often the job was already rate limited by its task, and headers counting one more."""
    count = int(job.headers.get(RATE_LIMITED_HEADER, 0)) + 1
    return count, {**job.headers, RATE_LIMITED_HEADER: count}
