"""Entry problems: what the scheduler logs when one entry cannot be fired.

A scheduler ticks every second or so; an entry that fails each time (its next tick cannot
be computed, its job cannot be built) would flood the log with one identical line per
tick. `EntryProblems` logs a problem when it first appears, again when it changes or an
hour later, and once more when the entry works again.
"""

from __future__ import annotations

import logging

log = logging.getLogger("conveyor.scheduler")

#: How long an unchanged problem of one entry stays quiet after it was logged (seconds).
REPEAT_AFTER = 3600.0


class EntryProblems:
    """The last problem logged per entry, and when, to log each one rarely."""

    def __init__(self, repeat_after: float = REPEAT_AFTER) -> None:
        self.repeat_after = repeat_after
        self._logged: dict[str, tuple[str, float]] = {}

    def failed(self, entry: str, exc: BaseException, now: float) -> bool:
        """Record that ``entry`` failed at ``now``; returns whether this was logged."""
        problem = f"{type(exc).__name__}: {exc}"
        seen = self._logged.get(entry)
        # A clock that went back (now < then) logs again rather than stay quiet for long.
        if seen is not None and seen[0] == problem and 0 <= now - seen[1] < self.repeat_after:
            return False
        self._logged[entry] = (problem, now)
        log.error(
            "schedule %s cannot fire: %s; its ticks are not enqueued until this is fixed "
            "(the other entries run; this is logged again in %s if it persists)",
            entry,
            problem,
            _span(self.repeat_after),
        )
        log.debug("schedule %s: the failure in full", entry, exc_info=exc)
        return True

    def worked(self, entry: str) -> None:
        """Record that ``entry`` fired (or had nothing due); says so if it had a problem."""
        if self._logged.pop(entry, None) is not None:
            log.info("schedule %s fires again", entry)


def _span(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"
