"""Times and durations as people read them, shared by the CLI and the dashboard.

Both show stored values, which may predate the checks enqueue makes today (an infinite
``run_at``, NaN, a year past 9999): such a value is printed as it is, never a crash.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

#: Beyond this many seconds (about 31,700 years) a duration is shown as a plain number.
_ABSURD_SECONDS = 1e12


def fmt_time(ts: float | None) -> str:
    """A timestamp as local ISO time to the millisecond; ``-`` for none."""
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")
    except (OverflowError, ValueError, OSError):  # stored before enqueue checked times
        return _invalid(ts)


def fmt_utc(ts: float | None) -> str:
    """A timestamp as UTC to the second (``2026-01-02 03:04:05 UTC``); ``-`` for none."""
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):  # stored before enqueue checked times
        return _invalid(ts)


def fmt_duration(seconds: float) -> str:
    """``4.2s``, ``3m05s``, ``1h02m``, ``2d03h`` (from 48 hours on)."""
    if not math.isfinite(seconds) or abs(seconds) > _ABSURD_SECONDS:  # damaged or pre-check
        return f"{seconds:.3g}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _invalid(ts: float) -> str:
    return f"{ts!r} (not a valid time)"
