"""What ``conveyor schedule list`` shows: each entry with its next and last run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.schedule import iso

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend
    from conveyor.schedule import ScheduleEntry


async def entry_rows(app: Conveyor, backend: Backend | None) -> list[dict[str, Any]]:
    """One row per entry, by name: schedule, timezone, task, next and last run, policy.

    Times are seconds since the epoch (``*_at``) and UTC ISO strings; ``last_run`` is the
    last tick enqueued by any scheduler, ``None`` when it never fired. The last runs are
    read from ``backend``'s `Scheduling` capability; without a backend (a store that records
    no ticks) they are all ``None``. An entry whose next run cannot be computed still gets
    its row, with ``next_run`` ``None`` and the reason in ``error`` (``None`` otherwise), so
    one bad entry never hides the others.
    """
    entries = [app.schedules[n] for n in sorted(app.schedules)]
    state: dict[str, float | None] = {}
    if backend is not None and entries:
        state = await backend.scheduling.schedule_state([e.name for e in entries])
    now = app.clock.now()
    rows = []
    for entry in entries:
        last = state.get(entry.name)
        upcoming, next_run, error = next_run_of(entry, now)
        rows.append(
            {
                "name": entry.name,
                "task": entry.task.name,
                "schedule": entry.schedule.describe(),
                "timezone": entry.timezone,
                "missed": entry.missed,
                "next_run": next_run,
                "next_run_at": upcoming,
                "last_run": None if last is None else iso(last),
                "last_run_at": last,
                "error": error,
            }
        )
    return rows


def next_run_of(entry: ScheduleEntry, now: float) -> tuple[float | None, str | None, str | None]:
    """``entry``'s next run after ``now``: epoch seconds, ISO string, and why not (or None)."""
    try:
        upcoming = entry.schedule.after(now)
        return upcoming, iso(upcoming), None
    except Exception as exc:  # noqa: BLE001 - a listing shows the problem, it does not crash
        return None, None, f"no next run: {type(exc).__name__}: {exc}"
